# Declarations of libmtmd (vendor/llama.cpp/tools/mtmd: mtmd.h, mtmd-helper.h)
# at the pinned commit: the parts the binding uses. The header calls the API
# experimental and it changes between commits (struct layouts too:
# mtmd_input_text has text_len, the bitmap helpers return a wrapper and take
# an options struct), so these follow the vendored headers, not older docs.

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libcpp cimport bool as cppbool

from llama cimport (ggml_backend_dev_t, ggml_log_callback, llama_context, llama_flash_attn_type, llama_model, llama_pos,
                   llama_seq_id, llama_token)


cdef extern from "mtmd.h" nogil:
    ctypedef struct mtmd_context:
        pass
    ctypedef struct mtmd_bitmap:
        pass
    ctypedef struct mtmd_image_tokens:
        pass
    ctypedef struct mtmd_input_chunk:
        pass
    ctypedef struct mtmd_input_chunks:
        pass

    enum mtmd_input_chunk_type:
        MTMD_INPUT_CHUNK_TYPE_TEXT
        MTMD_INPUT_CHUNK_TYPE_IMAGE
        MTMD_INPUT_CHUNK_TYPE_AUDIO

    ctypedef struct mtmd_input_text:
        const char * text
        size_t text_len
        cppbool add_special
        cppbool parse_special

    # Only the fields the binding sets; the rest keep mtmd_context_params_default()'s values.
    ctypedef struct mtmd_context_params:
        cppbool use_gpu
        ggml_backend_dev_t device
        cppbool print_timings
        int n_threads
        const char * media_marker
        llama_flash_attn_type flash_attn_type
        cppbool warmup
        int image_min_tokens
        int image_max_tokens

    struct mtmd_caps:
        cppbool inp_vision
        cppbool inp_audio

    const char * mtmd_default_marker()
    mtmd_context_params mtmd_context_params_default()
    mtmd_context * mtmd_init_from_file(const char * mmproj_fname, const llama_model * text_model,
                                       const mtmd_context_params ctx_params)
    void mtmd_free(mtmd_context * ctx)
    cppbool mtmd_decode_use_non_causal(const mtmd_context * ctx, const mtmd_input_chunk * chunk)
    cppbool mtmd_decode_use_mrope(const mtmd_context * ctx)
    cppbool mtmd_support_vision(const mtmd_context * ctx)
    cppbool mtmd_support_audio(const mtmd_context * ctx)
    int mtmd_get_audio_sample_rate(const mtmd_context * ctx)

    uint32_t mtmd_bitmap_get_nx(const mtmd_bitmap * bitmap)
    uint32_t mtmd_bitmap_get_ny(const mtmd_bitmap * bitmap)
    size_t mtmd_bitmap_get_n_bytes(const mtmd_bitmap * bitmap)
    cppbool mtmd_bitmap_is_audio(const mtmd_bitmap * bitmap)
    void mtmd_bitmap_free(mtmd_bitmap * bitmap)
    const char * mtmd_bitmap_get_id(const mtmd_bitmap * bitmap)

    mtmd_input_chunks * mtmd_input_chunks_init()
    size_t mtmd_input_chunks_size(const mtmd_input_chunks * chunks)
    const mtmd_input_chunk * mtmd_input_chunks_get(const mtmd_input_chunks * chunks, size_t idx)
    void mtmd_input_chunks_free(mtmd_input_chunks * chunks)

    mtmd_input_chunk_type mtmd_input_chunk_get_type(const mtmd_input_chunk * chunk)
    const llama_token * mtmd_input_chunk_get_tokens_text(const mtmd_input_chunk * chunk, size_t * n_tokens_output)
    size_t mtmd_input_chunk_get_n_tokens(const mtmd_input_chunk * chunk)
    const char * mtmd_input_chunk_get_id(const mtmd_input_chunk * chunk)
    llama_pos mtmd_input_chunk_get_n_pos(const mtmd_input_chunk * chunk)
    mtmd_input_chunk * mtmd_input_chunk_copy(const mtmd_input_chunk * chunk)
    void mtmd_input_chunk_free(mtmd_input_chunk * chunk)

    int32_t mtmd_tokenize(const mtmd_context * ctx, mtmd_input_chunks * output, const mtmd_input_text * text,
                          const mtmd_bitmap * const * bitmaps, size_t n_bitmaps)
    int32_t mtmd_encode_chunk(mtmd_context * ctx, const mtmd_input_chunk * chunk)
    float * mtmd_get_output_embd(mtmd_context * ctx)

    mtmd_caps mtmd_get_cap_from_file(const char * mmproj_fname)


cdef extern from "mtmd-helper.h" nogil:
    ctypedef struct mtmd_helper_video:
        pass
    ctypedef struct mtmd_helper_init_opt:
        pass
    struct mtmd_helper_bitmap_wrapper:
        mtmd_bitmap * bitmap
        mtmd_helper_video * video_ctx

    struct mtmd_helper_embd_batch:
        pass
    ctypedef int32_t (*mtmd_helper_post_decode_callback)(const mtmd_helper_embd_batch * batch, void * user_data)

    mtmd_helper_init_opt mtmd_helper_init_opt_default()
    void mtmd_helper_log_set(ggml_log_callback log_callback, void * user_data)
    void mtmd_helper_video_free(mtmd_helper_video * ctx)
    mtmd_helper_bitmap_wrapper mtmd_helper_bitmap_init_from_buf(const mtmd_context * ctx, const unsigned char * buf,
                                                                size_t len, cppbool placeholder,
                                                                mtmd_helper_init_opt opt)
    int32_t mtmd_helper_decode_image_chunk(mtmd_context * ctx, llama_context * lctx, const mtmd_input_chunk * chunk,
                                           float * encoded_embd, llama_pos n_past, llama_seq_id seq_id,
                                           int32_t n_batch, llama_pos * new_n_past,
                                           mtmd_helper_post_decode_callback callback,
                                           void * user_data)


cdef extern from "media_probe.h" nogil:
    int lln_image_info(const unsigned char * buf, size_t len, int * width, int * height)
    int lln_is_audio(const unsigned char * buf, size_t len)
    int lln_audio_info(const unsigned char * buf, size_t len, int sample_rate, uint64_t * frames)
