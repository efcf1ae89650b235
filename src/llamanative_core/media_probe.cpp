// See media_probe.h. stb_image is compiled here a second time, static, for
// stbi_info_from_memory: libmtmd's copy (in mtmd-helper.cpp) exports none of
// its functions.
#include "media_probe.h"

#include <climits>

#if defined(__GNUC__)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#include "stb/stb_image.h"
#if defined(__GNUC__)
#    pragma GCC diagnostic pop
#endif

int lln_image_info(const unsigned char * buf, size_t len, int * width, int * height) {
    if (buf == nullptr || len == 0 || len > static_cast<size_t>(INT_MAX)) {
        return 0;
    }
    int comp = 0;
    return stbi_info_from_memory(buf, static_cast<int>(len), width, height, &comp) ? 1 : 0;
}
