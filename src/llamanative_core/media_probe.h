// What an encoded image or audio clip will decode to, read before anything is
// decoded. libmtmd's helper decodes a whole image with stb_image into RGB, so
// an image whose header claims 100,000 x 100,000 pixels (a few kB of PNG)
// would make it allocate 30 GB; it decodes a whole audio clip with miniaudio
// into one float a sample, sized by the length the file declares, so a WAV
// header claiming 4 GB of samples would make it allocate 16 GB. The binding
// reads the header first and refuses media over its limits.
#pragma once

#include <cstddef>
#include <cstdint>

// 1 and the width and height in pixels when stb_image recognises `buf` as an
// image it can decode (JPEG, PNG, BMP, GIF, PSD, TGA, HDR, PIC, PNM); 0
// otherwise (audio, WebP, garbage). The size is the one the loader decodes
// (a top-down BMP's height positive, as stb_image flips it). Reads only the
// header; thread-safe.
int lln_image_info(const unsigned char * buf, size_t len, int * width, int * height);

// Whether libmtmd's helper takes `buf` for audio: the signature test of
// mtmd-helper.cpp (a RIFF/WAVE, ID3, MPEG sync word or fLaC start), which it
// applies before trying an image. 1 or 0; thread-safe.
int lln_is_audio(const unsigned char * buf, size_t len);

// For audio (lln_is_audio): 1 and, in *frames, the number of samples the
// helper's decode will produce, mono at `sample_rate` Hz (miniaudio's
// decoder is opened on the buffer, with the helper's settings, and asked for
// its length; nothing is decoded but headers: for an MP3 without a length
// header that is a scan of its frame headers). 0 when miniaudio cannot open
// it or cannot tell its length (corrupt, truncated, an unsupported codec).
// Thread-safe.
int lln_audio_info(const unsigned char * buf, size_t len, int sample_rate, uint64_t * frames);
