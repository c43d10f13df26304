# The CUDA backend as its own shared library, build/Release/libcrunet_cuda.so (not a .node file:
# node-gyp-build loads the first .node in build/Release). Included by CMakeLists.txt.
#
# CRUNET_CUDA=AUTO (default; also read from the environment): built when nvcc, cuBLAS and cuDNN 9 are
# found, skipped with a STATUS line naming what is missing; ON: required (configure fails naming what is
# missing); OFF: not built. Search order for each piece: CUDA_HOME / CUDA_PATH / CUDNN_HOME / CUDNN_PATH
# (CMake or environment variables), CRUNET_CUDA_ROOT (a wheel install made by scripts/install-cuda.sh),
# the wheel cache ${CRUNET_CUDA_CACHE:-$HOME/.cache/crunet/cuda}/*, the Python nvidia wheels of
# python3's site-packages, then /usr/local/cuda, /opt/cuda and the system paths. CRUNET_CUDA_ARCHS
# (default 90: sm_90 code plus compute_90 PTX) sets the GPU targets.

# -DCRUNET_CUDA=... wins over the environment variable, which wins over AUTO.
if(DEFINED ENV{CRUNET_CUDA} AND NOT "$ENV{CRUNET_CUDA}" STREQUAL "")
  set(_crunet_cuda_default "$ENV{CRUNET_CUDA}")
else()
  set(_crunet_cuda_default AUTO)
endif()
set(CRUNET_CUDA "${_crunet_cuda_default}" CACHE STRING "Build the CUDA backend library: AUTO, ON or OFF")
set_property(CACHE CRUNET_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${CRUNET_CUDA}" CRUNET_CUDA)
if(NOT CRUNET_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "CRUNET_CUDA must be AUTO, ON or OFF, got '${CRUNET_CUDA}'")
endif()
set(CRUNET_CUDA_ARCHS 90 CACHE STRING "CUDA architectures for libcrunet_cuda (CMake syntax: 90 = sm_90 + PTX)")
set(CRUNET_CUDA_BUILT OFF)

function(crunet_cuda_skip why)
  if(CRUNET_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CRUNET_CUDA=ON but the CUDA backend cannot be built: ${why}")
  endif()
  message(STATUS "CUDA backend: not built (${why})")
  set(CRUNET_CUDA_SKIP_REASON "${why}" PARENT_SCOPE)
endfunction()

if(CRUNET_CUDA STREQUAL "OFF")
  message(STATUS "CUDA backend: not built (CRUNET_CUDA=OFF)")
  return()
endif()

# ---- candidate prefixes --------------------------------------------------------------------------
set(_roots "")
foreach(v CUDA_HOME CUDA_PATH CUDNN_HOME CUDNN_PATH CRUNET_CUDA_ROOT)
  if(DEFINED ${v})
    list(APPEND _roots "${${v}}")
  endif()
  if(DEFINED ENV{${v}})
    list(APPEND _roots "$ENV{${v}}")
  endif()
endforeach()
if(DEFINED ENV{CRUNET_CUDA_CACHE})
  set(_cache "$ENV{CRUNET_CUDA_CACHE}")
else()
  set(_cache "$ENV{HOME}/.cache/crunet/cuda")
endif()
file(GLOB _sets LIST_DIRECTORIES true "${_cache}/*")
list(SORT _sets ORDER DESCENDING)
list(APPEND _roots ${_sets})
find_program(_python NAMES python3 python)
if(_python)
  execute_process(COMMAND "${_python}" -c "import nvidia, sys; print(';'.join(nvidia.__path__))"
                  OUTPUT_VARIABLE _py_nvidia OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _py_rc)
  if(_py_rc EQUAL 0 AND _py_nvidia)
    list(APPEND _roots ${_py_nvidia})
  endif()
endif()
list(APPEND _roots /usr/local/cuda /opt/cuda)

# A root may be a toolkit, a cuDNN install, a wheel --target folder (site/nvidia/...), or the nvidia
# package folder of a Python site-packages.
set(_prefixes "")
foreach(r IN LISTS _roots)
  foreach(sub "" site/nvidia/cu13 site/nvidia/cudnn site/nvidia/cublas site/nvidia/cuda_runtime
              site/nvidia/cuda_nvcc cu13 cudnn cublas cuda_runtime cuda_nvcc nvidia/cu13 nvidia/cudnn)
    if(IS_DIRECTORY "${r}/${sub}")
      list(APPEND _prefixes "${r}/${sub}")
    endif()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES _prefixes)

find_program(CRUNET_NVCC nvcc HINTS ${_prefixes} PATH_SUFFIXES bin)
find_path(CRUNET_CUDNN_INCLUDE cudnn_version.h HINTS ${_prefixes} PATH_SUFFIXES include)
find_library(CRUNET_CUDNN_LIB NAMES cudnn libcudnn.so.9 HINTS ${_prefixes} PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
find_path(CRUNET_CUBLAS_INCLUDE cublas_v2.h HINTS ${_prefixes} PATH_SUFFIXES include)
find_library(CRUNET_CUBLAS_LIB NAMES cublas libcublas.so.13 libcublas.so.12 HINTS ${_prefixes} PATH_SUFFIXES lib lib64)
find_library(CRUNET_CUBLASLT_LIB NAMES cublasLt libcublasLt.so.13 libcublasLt.so.12 HINTS ${_prefixes} PATH_SUFFIXES lib lib64)

set(_missing "")
if(NOT CRUNET_NVCC)
  list(APPEND _missing "nvcc")
endif()
if(NOT CRUNET_CUDNN_INCLUDE OR NOT CRUNET_CUDNN_LIB)
  list(APPEND _missing "cuDNN 9 (cudnn_version.h, libcudnn.so.9)")
endif()
if(NOT CRUNET_CUBLAS_INCLUDE OR NOT CRUNET_CUBLAS_LIB)
  list(APPEND _missing "cuBLAS (cublas_v2.h, libcublas)")
endif()
if(_missing)
  string(JOIN ", " _m ${_missing})
  crunet_cuda_skip("not found: ${_m}; run scripts/install-cuda.sh or set CUDA_HOME / CUDNN_HOME")
  return()
endif()
file(STRINGS "${CRUNET_CUDNN_INCLUDE}/cudnn_version.h" _cudnn_major REGEX "^#define CUDNN_MAJOR [0-9]+")
string(REGEX REPLACE ".* ([0-9]+)$" "\\1" _cudnn_major "${_cudnn_major}")
if(NOT _cudnn_major EQUAL 9)
  crunet_cuda_skip("cuDNN 9 is needed, ${CRUNET_CUDNN_INCLUDE} has cuDNN ${_cudnn_major}")
  return()
endif()
execute_process(COMMAND "${CRUNET_NVCC}" --version OUTPUT_VARIABLE _nvcc_version RESULT_VARIABLE _nvcc_rc ERROR_QUIET)
if(NOT _nvcc_rc EQUAL 0)
  crunet_cuda_skip("${CRUNET_NVCC} --version failed")
  return()
endif()

# ---- the library ---------------------------------------------------------------------------------
set(CMAKE_CUDA_COMPILER "${CRUNET_NVCC}")
set(CMAKE_CUDA_HOST_COMPILER "${CMAKE_CXX_COMPILER}")
set(CMAKE_CUDA_ARCHITECTURES ${CRUNET_CUDA_ARCHS})
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)  # libcudart_static: no libcudart.so to find at run time
# nvcc of the pip wheels looks for its libraries in lib64, but the wheels ship lib/.
get_filename_component(_nvcc_root "${CRUNET_NVCC}" DIRECTORY)
get_filename_component(_nvcc_root "${_nvcc_root}" DIRECTORY)
if(NOT EXISTS "${_nvcc_root}/lib64" AND EXISTS "${_nvcc_root}/lib/libcudart_static.a")
  set(CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} -L${_nvcc_root}/lib")
endif()
enable_language(CUDA)

set(CRUNET_CUDA_SOURCES "")
string(JSON _count LENGTH "${CRUNET_SOURCES_JSON}" cuda)
math(EXPR _last "${_count} - 1")
foreach(i RANGE ${_last})
  string(JSON _src GET "${CRUNET_SOURCES_JSON}" cuda ${i})
  list(APPEND CRUNET_CUDA_SOURCES "${CMAKE_SOURCE_DIR}/${_src}")
endforeach()

get_filename_component(_cudnn_libdir "${CRUNET_CUDNN_LIB}" DIRECTORY)
get_filename_component(_cublas_libdir "${CRUNET_CUBLAS_LIB}" DIRECTORY)
set(CRUNET_CUDA_LIBRARY_DIRS "${_cudnn_libdir};${_cublas_libdir}")
list(REMOVE_DUPLICATES CRUNET_CUDA_LIBRARY_DIRS)
string(REPLACE ";" "," _archs_str "${CRUNET_CUDA_ARCHS}")

add_library(crunet_cuda SHARED ${CRUNET_CUDA_SOURCES})
set_target_properties(crunet_cuda PROPERTIES
  CXX_VISIBILITY_PRESET hidden CUDA_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
  # The wheel folders hold no unversioned libcudnn.so / libcublas.so and nothing on the system points at
  # them: record them in the library. RPATH (not RUNPATH) so that cuBLAS finds cuBLASLt there too.
  BUILD_RPATH "${CRUNET_CUDA_LIBRARY_DIRS}" INSTALL_RPATH "${CRUNET_CUDA_LIBRARY_DIRS}")
target_include_directories(crunet_cuda SYSTEM PRIVATE ${CMAKE_CUDA_TOOLKIT_INCLUDE_DIRECTORIES}
                           "${CRUNET_CUDNN_INCLUDE}" "${CRUNET_CUBLAS_INCLUDE}")
target_compile_definitions(crunet_cuda PRIVATE "CRUNET_CUDA_ARCHS=\"${_archs_str}\"")
target_compile_options(crunet_cuda PRIVATE
  "$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra;-Wno-unused-parameter>"
  "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter;--Werror=cross-execution-space-call>")
target_link_libraries(crunet_cuda PRIVATE "${CRUNET_CUDNN_LIB}" "${CRUNET_CUBLAS_LIB}" ${CMAKE_DL_LIBS})
if(CRUNET_CUBLASLT_LIB)
  target_link_libraries(crunet_cuda PRIVATE "${CRUNET_CUBLASLT_LIB}")
endif()
target_link_options(crunet_cuda PRIVATE -Wl,--disable-new-dtags -Wl,--no-undefined)

# The addon names these folders when the library fails to load (its loader, backend_registry.cc).
string(JOIN ", " _dirs_text ${CRUNET_CUDA_LIBRARY_DIRS})
set_property(SOURCE "${CMAKE_SOURCE_DIR}/native/addon/backend_registry.cc" APPEND PROPERTY
             COMPILE_DEFINITIONS "CRUNET_CUDA_LIBRARY_DIRS=\"${_dirs_text}\"")
add_dependencies(${PROJECT_NAME} crunet_cuda)
set(CRUNET_CUDA_BUILT ON)
message(STATUS "CUDA backend: building libcrunet_cuda.so with ${CRUNET_NVCC} (${CRUNET_CUDA_ARCHS}), "
               "cuDNN ${CRUNET_CUDNN_LIB}, cuBLAS ${CRUNET_CUBLAS_LIB}")
