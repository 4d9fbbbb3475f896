// Example: classify one .npy batch with an installed parnet.
//   classify model.onnx batch.npy
#include <parnet/parnet.h>

#include <algorithm>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: classify model.onnx batch.npy\n";
    return 2;
  }
  auto engine = parnet::Engine::Load(argv[1]);
  if (!engine.ok()) {
    std::cerr << engine.status().ToString() << "\n";
    return 1;
  }
  auto batch = parnet::io::ReadNpy(argv[2]);
  if (!batch.ok()) {
    std::cerr << batch.status().ToString() << "\n";
    return 1;
  }
  auto outputs = (*engine)->Run({{(*engine)->input_names()[0], *batch}});
  if (!outputs.ok()) {
    std::cerr << outputs.status().ToString() << "\n";
    return 1;
  }
  const parnet::Tensor& logits = (*outputs)[0];
  const int64_t classes = logits.dim(1);
  for (int64_t i = 0; i < logits.dim(0); ++i) {
    const float* row = logits.data<float>() + i * classes;
    std::cout << "item " << i << ": class " << (std::max_element(row, row + classes) - row) << "\n";
  }
  std::cout << "logits " << logits.TypeString() << "\n";
  return 0;
}
