// See media_probe.h. stb_image and miniaudio are compiled here a second time,
// static: libmtmd's copies (in mtmd-helper.cpp) export none of their
// functions. miniaudio gets mtmd-helper.cpp's settings (decoding only), so
// that its decoders and its resampler's length are the helper's.
#include "media_probe.h"

#include <climits>
#include <cstring>

#if defined(__GNUC__)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wunused-function"
#    pragma GCC diagnostic ignored "-Wunused-variable"
#    pragma GCC diagnostic ignored "-Wunused-parameter"
#    pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#include "stb/stb_image.h"

#define MINIAUDIO_IMPLEMENTATION
#define MA_NO_ENCODING
#define MA_NO_DEVICE_IO
#define MA_NO_RESOURCE_MANAGER
#define MA_NO_NODE_GRAPH
#define MA_NO_ENGINE
#define MA_NO_GENERATION
#define MA_API static
// The one global MA_API does not cover: renamed, so that this copy's lock is not a second definition
// of libmtmd's symbol in the process (AddressSanitizer reports that as an ODR violation).
#define ma_atomic_global_lock lln_ma_atomic_global_lock
#include "miniaudio/miniaudio.h"
#if defined(__GNUC__)
#    pragma GCC diagnostic pop
#endif

int lln_image_info(const unsigned char * buf, size_t len, int * width, int * height) {
    if (buf == nullptr || len == 0 || len > static_cast<size_t>(INT_MAX)) {
        return 0;
    }
    int comp = 0;
    if (!stbi_info_from_memory(buf, static_cast<int>(len), width, height, &comp)) {
        return 0;
    }
    // stb_image's BMP header reader gives a top-down bitmap's height as the header holds it, negative; its
    // loader decodes the bitmap at the height's absolute value (flipped), so that is the size to check.
    // INT_MIN has no absolute value: the loader refuses it ("too large"), and so is it refused here.
    if (*height < 0 && len >= 2 && buf[0] == 'B' && buf[1] == 'M') {
        *height = *height == INT_MIN ? 0 : -*height;
    }
    return 1;
}

int lln_is_audio(const unsigned char * buf, size_t len) {
    // mtmd-helper.cpp's audio_helpers::is_audio_file, test for test.
    if (buf == nullptr || len < 12) {
        return 0;
    }
    const bool is_wav  = std::memcmp(buf, "RIFF", 4) == 0 && std::memcmp(buf + 8, "WAVE", 4) == 0;
    const bool is_mp3  = std::memcmp(buf, "ID3", 3) == 0 || (buf[0] == 0xFF && (buf[1] & 0xE0) == 0xE0);
    const bool is_flac = std::memcmp(buf, "fLaC", 4) == 0;
    return is_wav || is_mp3 || is_flac ? 1 : 0;
}

int lln_audio_info(const unsigned char * buf, size_t len, int sample_rate, uint64_t * frames) {
    *frames = 0;
    if (buf == nullptr || len == 0 || sample_rate <= 0) {
        return 0;
    }
    // The helper's decoder configuration: float samples, one channel, the projector's rate.
    ma_decoder_config config = ma_decoder_config_init(ma_format_f32, 1, static_cast<ma_uint32>(sample_rate));
    ma_decoder decoder;
    if (ma_decoder_init_memory(buf, len, &config, &decoder) != MA_SUCCESS) {
        return 0;
    }
    ma_uint64 n = 0;
    const ma_result rc = ma_decoder_get_length_in_pcm_frames(&decoder, &n);
    ma_decoder_uninit(&decoder);
    if (rc != MA_SUCCESS) {
        return 0;
    }
    *frames = static_cast<uint64_t>(n);
    return 1;
}
