// Inference on image files and buffers from a checkpoint.
export { createPredictor, classNamesOf, softmax } from './predictor.js';
export type { ClassScore, Prediction, Predictor, PredictorOptions } from './predictor.js';
export { preprocessImage, TORCHVISION_IMAGENET } from './preprocess.js';
export type { ImageInput, ImageLimits } from './preprocess.js';
