#include "runtime/backends/cpu/cpu_layout.h"

#include <algorithm>
#include <limits>

namespace parnet::cpu {

using dnnl::memory;

std::optional<memory::dims> StridesOf(const memory::desc& desc) {
  const dnnl_memory_desc_t& d = desc.data;
  if (d.format_kind != dnnl_blocked || d.format_desc.blocking.inner_nblks != 0 || d.offset0 != 0)
    return std::nullopt;
  for (int i = 0; i < d.ndims; ++i) {
    if (d.padded_dims[i] != d.dims[i]) return std::nullopt;
  }
  return memory::dims(d.format_desc.blocking.strides, d.format_desc.blocking.strides + d.ndims);
}

std::optional<memory::dims> ReshapeStrides(const memory::dims& from, const memory::dims& strides,
                                           const memory::dims& to) {
  memory::dims od, os;  // the old dims longer than 1, and their strides
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i] != 1) {
      od.push_back(from[i]);
      os.push_back(strides[i]);
    }
  }
  memory::dims ns(to.size(), 1);
  size_t oi = 0, ni = 0;
  // Walk groups of old and new dims with equal products; inside a group the old dims must be
  // contiguous relative to each other, and the new dims get strides from the group's last one.
  while (oi < od.size() && ni < to.size()) {
    size_t oj = oi + 1, nj = ni + 1;
    int64_t op = od[oi], np = to[ni];
    while (op != np) {
      if (np < op) {
        if (nj == to.size()) return std::nullopt;
        np *= to[nj++];
      } else {
        if (oj == od.size()) return std::nullopt;
        op *= od[oj++];
      }
    }
    for (size_t k = oi; k + 1 < oj; ++k) {
      if (os[k] != od[k + 1] * os[k + 1]) return std::nullopt;
    }
    ns[nj - 1] = os[oj - 1];
    for (size_t k = nj - 1; k > ni; --k) ns[k - 1] = ns[k] * to[k];
    oi = oj;
    ni = nj;
  }
  if (oi != od.size()) return std::nullopt;
  for (size_t k = ni; k < to.size(); ++k) {
    if (to[k] != 1) return std::nullopt;  // trailing new dims must be 1 (any stride)
  }
  // A leading size-1 dim (batch 1) gets the outermost stride: oneDNN reads the dims' order from
  // the strides, and a batch dim ordered inside H and W (`cdab`) sends pooling to ref:any.
  if (!to.empty() && to[0] == 1) {
    int64_t outer = 1;
    for (size_t k = 1; k < to.size(); ++k) outer = std::max(outer, ns[k] * to[k]);
    ns[0] = outer;
  }
  return ns;
}

bool ChannelsLast(const memory::dims& dims, const memory::dims& strides) {
  const size_t r = dims.size();
  if (r < 4 || dims[r - 1] <= 1) return false;
  int64_t min_channel = std::numeric_limits<int64_t>::max();
  for (size_t i = 1; i + 2 < r; ++i) {
    if (dims[i] > 1) min_channel = std::min(min_channel, strides[i]);
  }
  return min_channel < strides[r - 1];
}

memory::dims ChannelsLastStrides(const memory::dims& dims) {
  const size_t r = dims.size();
  memory::dims s(r, 1);
  int64_t inner = 1;
  for (size_t i = r - 2; i-- > 1;) {  // dims r-3 .. 1, innermost first
    s[i] = inner;
    inner *= dims[i];
  }
  s[r - 1] = inner;
  s[r - 2] = inner * dims[r - 1];
  s[0] = s[r - 2] * dims[r - 2];
  return s;
}

}  // namespace parnet::cpu
