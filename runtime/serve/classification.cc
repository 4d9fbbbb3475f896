#include "runtime/serve/classification.h"

#include <algorithm>
#include <numeric>

#include "runtime/serve/datatype.h"

namespace parnet::serve {

Status CheckClassCount(const std::string& what, int64_t count) {
  if (count >= 1) return Status::Ok();
  return InvalidArgument(what + ": classification is " + std::to_string(count) +
                         "; ask for the top N classes with N >= 1");
}

Status ClassesInSharedMemory(const std::string& what) {
  return InvalidArgument(what +
                         " asks for classification into shared memory; parnet returns classes "
                         "in the response only: drop one of the two");
}

StatusOr<Classes> Classify(const std::string& what, const Tensor& scores, int64_t count,
                           bool batched, const std::vector<std::string>& labels) {
  RETURN_IF_ERROR(CheckClassCount(what, count));
  const int64_t rows = batched && scores.rank() > 0 ? scores.dim(0) : 1;
  const int64_t classes = rows > 0 ? scores.num_elements() / rows : 0;
  if (classes == 0) {
    return InvalidArgument(what + " is " + ProtocolName(scores.dtype()) +
                           ShapeToString(scores.shape()) + ": no classes to rank");
  }
  if (scores.dtype() == DType::kBool) {
    return InvalidArgument(what + " is BOOL; classification ranks numeric scores");
  }
  const Tensor f = ConvertTo(scores, DType::kFloat32);
  const float* data = f.data<float>();
  const int64_t k = std::min(count, classes);
  Classes out;
  out.shape = batched ? Shape{rows, k} : Shape{k};
  std::vector<int64_t> order(static_cast<size_t>(classes));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * classes;
    std::iota(order.begin(), order.end(), 0);
    // Highest score first; ties keep the lower index first, so answers are reproducible.
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [row](int64_t a, int64_t b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (int64_t i = 0; i < k; ++i) {
      const int64_t c = order[static_cast<size_t>(i)];
      std::string v = std::to_string(row[c]) + ":" + std::to_string(c);
      if (c < static_cast<int64_t>(labels.size())) v += ":" + labels[static_cast<size_t>(c)];
      out.values.push_back(std::move(v));
    }
  }
  return out;
}

std::string SerializeBytes(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& v : values) {
    const auto n = static_cast<uint32_t>(v.size());
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((n >> (8 * b)) & 0xff));
    out += v;
  }
  return out;
}

}  // namespace parnet::serve
