// JPEG via libjpeg-turbo, the library Pillow itself links, with the settings Pillow leaves at their
// defaults (ISLOW DCT, fancy upsampling), so that the pixels are identical. Gray becomes RGB by
// replication; CMYK follows Pillow: the data is read with Adobe's inverted polarity ("CMYK;I") and
// converted with Pillow's cmyk2rgb.
#include <cstddef>
#include <cstdio>
// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>

#include <csetjmp>
#include <cstring>
#include <vector>

#include "runtime/io/image_codecs.h"

namespace parnet::io::internal {
namespace {

// As with PngJob: state the setjmp frame touches lives outside it. `err` must stay first: libjpeg
// hands callbacks a pointer to it, which we cast back to the whole job.
struct JpegJob {
  jpeg_error_mgr err;
  std::jmp_buf jump;
  char error[JMSG_LENGTH_MAX] = {};
  Status size_error;
  bool created = false;
  int components = 0;
  JDIMENSION width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

[[noreturn]] void OnJpegError(j_common_ptr cinfo) {
  auto* job = reinterpret_cast<JpegJob*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, job->error);
  std::longjmp(job->jump, 1);  // NOLINT(cert-err52-cpp): libjpeg's documented error model
}

// libjpeg only warns on premature end of data and pads the image with gray; Pillow reports
// "image file is truncated", so that warning is an error here. Other warnings (extraneous bytes
// before a marker, ...) Pillow ignores, and so do we, silently.
void OnJpegMessage(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) OnJpegError(cinfo);
}

J_COLOR_SPACE OutputSpace(int components) {
  switch (components) {
    case 1:
      return JCS_GRAYSCALE;
    case 3:
      return JCS_RGB;
    case 4:
      return JCS_CMYK;
    default:
      return JCS_UNKNOWN;
  }
}

bool RunLibjpeg(jpeg_decompress_struct* cinfo, std::string_view bytes, JpegJob* job) {
  if (setjmp(job->jump)) return false;  // NOLINT(cert-err52-cpp): see OnJpegError
  jpeg_create_decompress(cinfo);
  job->created = true;
  jpeg_mem_src(cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_read_header(cinfo, TRUE);
  job->components = cinfo->num_components;
  job->width = cinfo->image_width;
  job->height = cinfo->image_height;
  job->size_error = CheckImageSize(job->width, job->height);
  if (OutputSpace(job->components) == JCS_UNKNOWN) {
    job->size_error = InvalidArgument("JPEG with " + std::to_string(job->components) +
                                      " components; Pillow and parnet read 1 (gray), 3 or 4");
  }
  if (!job->size_error.ok()) return false;
  cinfo->out_color_space = OutputSpace(job->components);
  jpeg_start_decompress(cinfo);
  const size_t stride = size_t{cinfo->output_width} * cinfo->output_components;
  job->pixels.resize(stride * cinfo->output_height);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = &job->pixels[stride * cinfo->output_scanline];
    // With an in-memory source libjpeg never suspends; 0 rows would mean it cannot progress.
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) ERREXIT(cinfo, JERR_INPUT_EMPTY);
  }
  // No jpeg_finish_decompress: all pixels are in, and a missing EOI marker is no reason to fail.
  return true;
}

// Pillow's cmyk2rgb on "CMYK;I" data: the inverted samples c' = 255 - c give
// out = nk - round(c' * nk / 255) with nk = 255 - k' = k, rounded as Pillow's MULDIV255.
uint8_t CmykChannel(uint8_t c, uint8_t k) {
  const int nk = k;
  const int tmp = (255 - c) * nk + 128;
  return static_cast<uint8_t>(nk - (((tmp >> 8) + tmp) >> 8));
}

Image PixelsToRgb(const JpegJob& job) {
  Image img{job.height, job.width, std::vector<uint8_t>(size_t{job.height} * job.width * 3)};
  const size_t n = size_t{job.height} * job.width;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* out = &img.rgb[i * 3];
    const uint8_t* in = &job.pixels[i * job.components];
    if (job.components == 1) {
      out[0] = out[1] = out[2] = in[0];
    } else if (job.components == 3) {
      std::memcpy(out, in, 3);
    } else {
      for (int c = 0; c < 3; ++c) out[c] = CmykChannel(in[c], in[3]);
    }
  }
  return img;
}

}  // namespace

StatusOr<Image> DecodeJpeg(std::string_view bytes) {
  JpegJob job;
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&job.err);
  job.err.error_exit = OnJpegError;
  job.err.emit_message = OnJpegMessage;
  const bool ok = RunLibjpeg(&cinfo, bytes, &job);
  if (job.created) jpeg_destroy_decompress(&cinfo);
  if (!job.size_error.ok()) return job.size_error;
  if (!ok) {
    return DataLoss(std::string("corrupt or truncated JPEG: libjpeg says \"") + job.error + "\" (" +
                    std::to_string(bytes.size()) +
                    " bytes in the file); re-export or "
                    "re-download it");
  }
  return PixelsToRgb(job);
}

}  // namespace parnet::io::internal
