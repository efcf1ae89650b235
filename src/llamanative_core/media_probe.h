// The size of an encoded image from its header, before anything is decoded:
// libmtmd's helper decodes a whole image with stb_image into RGB, so an image
// whose header claims 100,000 x 100,000 pixels (a few kB of PNG) would make it
// allocate 30 GB. The binding reads the header first and refuses images over
// its pixel limit.
#pragma once

#include <cstddef>

// 1 and the width and height in pixels when stb_image recognises `buf` as an
// image it can decode (JPEG, PNG, BMP, GIF, PSD, TGA, HDR, PIC, PNM); 0
// otherwise (audio, WebP, garbage). Reads only the header; thread-safe.
int lln_image_info(const unsigned char * buf, size_t len, int * width, int * height);
