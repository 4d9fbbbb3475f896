// The translation unit of libparnet.so. Its contents come whole from the layer libraries
// (linked with WHOLE_ARCHIVE); this file only anchors the shared library and checks that the
// public umbrella header compiles on its own.
#include "parnet/parnet.h"
