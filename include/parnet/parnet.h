// parnet's public API for C++ programs: load a model, create an engine, run tensors.
//
//   #include <parnet/parnet.h>
//   auto engine = parnet::Engine::Load("model.onnx");
//   if (!engine.ok()) { std::cerr << engine.status().ToString(); return 1; }
//   parnet::Tensor images(parnet::DType::kFloat32, {1, 3, 224, 224});
//   auto outputs = (*engine)->Run({{(*engine)->input_names()[0], images}});
//
// Link with `find_package(parnet)` and `target_link_libraries(app PRIVATE parnet::parnet)`.
#pragma once

#include "runtime/core/logging.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/exec/engine.h"
#include "runtime/io/image.h"
#include "runtime/io/npy.h"
