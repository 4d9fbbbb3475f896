// NumPy .npy files: read (format 1.0, 2.0, 3.0) and write (format 1.0, as numpy.save does).
//
// Only what parnet's tensors hold is supported: C order, little-endian (or byte-order-free)
// numeric dtypes <f2 <f4 <f8 <i8 <i4 <i2 |i1 |u1 <u2 <u4 <u8 |b1, any rank including 0-d.
// Everything else (Fortran order, big-endian, structured or object dtypes, pickles) is rejected
// with a message that says how to re-save the array. No function here aborts on bad input.
// Thread-safety: all functions are reentrant; they share no state.
#pragma once

#include <string>
#include <string_view>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::io {

// Reads the .npy file at `path` into a new tensor that owns its bytes.
// NOT_FOUND: no such file. INVALID_ARGUMENT: not a .npy file, unsupported version, dtype or
// layout. DATA_LOSS: malformed header, or a body shorter or longer than the header's shape says.
StatusOr<Tensor> ReadNpy(const std::string& path);

// Parses .npy `bytes`; `source` names them in error messages (a path, or "<test bytes>").
StatusOr<Tensor> ReadNpyBytes(std::string_view bytes, const std::string& source);

// Serializes `t` as numpy.save(allow_pickle=False) would: format 1.0 (2.0 only if the header
// outgrows 64 KiB), header padded with spaces to a multiple of 64 bytes. INVALID_ARGUMENT for an
// undefined tensor or a dtype numpy has no equivalent for (BF16).
StatusOr<std::string> NpyBytes(const Tensor& t);

// Writes NpyBytes(t) to `path`, replacing any existing file.
Status WriteNpy(const std::string& path, const Tensor& t);

}  // namespace parnet::io
