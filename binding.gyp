# Builds the same CPU addon as CMakeLists.txt, from the same sources.json, with node-gyp.
{
  "targets": [{
    "target_name": "crunet",
    "sources": [
      "<!@(node -p \"const s=require('./sources.json');[...s.core,...s.cpu,...s.addon].join(' ')\")"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "/usr/include/oneapi"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL", "CRUNET_BUILD_SYSTEM=\"node-gyp\""],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-fopenmp", "-O3", "-Wno-unused-parameter"],
    "libraries": ["-ldnnl", "-fopenmp"]
  }]
}
