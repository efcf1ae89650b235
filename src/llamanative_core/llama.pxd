# C declarations of the parts of llama.h, ggml.h, ggml-backend.h and gguf.h
# that llamanative uses. Declarations only: no logic lives here.
# Every function that can take time is declared `nogil` (the whole block is),
# so the wrappers can call it inside `with nogil:`.

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdio cimport FILE
from libcpp cimport bool as cppbool

cdef extern from "ggml.h" nogil:
    enum ggml_log_level:
        GGML_LOG_LEVEL_NONE
        GGML_LOG_LEVEL_DEBUG
        GGML_LOG_LEVEL_INFO
        GGML_LOG_LEVEL_WARN
        GGML_LOG_LEVEL_ERROR
        GGML_LOG_LEVEL_CONT

    enum ggml_type:
        GGML_TYPE_F32
        GGML_TYPE_F16
        GGML_TYPE_Q4_0
        GGML_TYPE_Q4_1
        GGML_TYPE_Q5_0
        GGML_TYPE_Q5_1
        GGML_TYPE_Q8_0
        GGML_TYPE_IQ4_NL
        GGML_TYPE_BF16
        GGML_TYPE_NVFP4

    ctypedef void (*ggml_log_callback)(ggml_log_level level, const char * text, void * user_data)
    ctypedef cppbool (*ggml_abort_callback)(void * data)

    const char * ggml_version()
    const char * ggml_commit()
    void ggml_time_init()  # the part of llama_backend_init() that llamanative needs (see system.pxi)

    # Thread pools: the parameters are in ggml-base, creating and freeing a
    # pool is the CPU backend's (ggml_threadpool_new/free, looked up in its
    # registry, since the CPU backend is a plugin).
    struct ggml_threadpool_params:
        int n_threads
        uint32_t poll
        cppbool strict_cpu
        cppbool paused
    struct ggml_threadpool:
        pass
    ctypedef ggml_threadpool * ggml_threadpool_t
    ggml_threadpool_params ggml_threadpool_params_default(int n_threads)

# The signatures of the CPU backend's ggml_threadpool_new / ggml_threadpool_free.
ctypedef ggml_threadpool_t (*ggml_threadpool_new_fn)(ggml_threadpool_params * params) noexcept nogil
ctypedef void (*ggml_threadpool_free_fn)(ggml_threadpool_t threadpool) noexcept nogil


cdef extern from "ggml-backend.h" nogil:
    ctypedef struct ggml_backend_reg:
        pass
    ctypedef struct ggml_backend_device:
        pass
    ctypedef ggml_backend_reg * ggml_backend_reg_t
    ctypedef ggml_backend_device * ggml_backend_dev_t

    enum ggml_backend_dev_type:
        GGML_BACKEND_DEVICE_TYPE_CPU
        GGML_BACKEND_DEVICE_TYPE_GPU
        GGML_BACKEND_DEVICE_TYPE_IGPU
        GGML_BACKEND_DEVICE_TYPE_ACCEL
        GGML_BACKEND_DEVICE_TYPE_META

    struct ggml_backend_feature:
        const char * name
        const char * value
    ctypedef ggml_backend_feature * (*ggml_backend_get_features_t)(ggml_backend_reg_t reg)

    const char * ggml_backend_dev_name(ggml_backend_dev_t device)
    const char * ggml_backend_dev_description(ggml_backend_dev_t device)
    void ggml_backend_dev_memory(ggml_backend_dev_t device, size_t * free, size_t * total)
    ggml_backend_dev_type ggml_backend_dev_get_type "ggml_backend_dev_type"(ggml_backend_dev_t device)
    ggml_backend_reg_t ggml_backend_dev_backend_reg(ggml_backend_dev_t device)

    const char * ggml_backend_reg_name(ggml_backend_reg_t reg)
    size_t ggml_backend_reg_dev_count(ggml_backend_reg_t reg)
    void * ggml_backend_reg_get_proc_address(ggml_backend_reg_t reg, const char * name)

    # Load one backend plugin and register it; NULL (logged by ggml) when the
    # file cannot be loaded, reports a score of 0, or fails to initialise.
    ggml_backend_reg_t ggml_backend_load(const char * path)

    size_t ggml_backend_reg_count()
    ggml_backend_reg_t ggml_backend_reg_get(size_t index)
    size_t ggml_backend_dev_count()
    ggml_backend_dev_t ggml_backend_dev_get(size_t index)
    ggml_backend_dev_t ggml_backend_dev_by_name(const char * name)
    ggml_backend_dev_t ggml_backend_dev_by_type(ggml_backend_dev_type type)
    ggml_backend_reg_t ggml_backend_reg_by_name(const char * name)
    ggml_backend_dev_t ggml_backend_reg_dev_get(ggml_backend_reg_t reg, size_t index)
    # Register a backend's devices (an RPC server's, from ggml_backend_rpc_add_server).
    void ggml_backend_register(ggml_backend_reg_t reg)


cdef extern from "gguf.h" nogil:
    enum gguf_type:
        GGUF_TYPE_UINT8
        GGUF_TYPE_INT8
        GGUF_TYPE_UINT16
        GGUF_TYPE_INT16
        GGUF_TYPE_UINT32
        GGUF_TYPE_INT32
        GGUF_TYPE_FLOAT32
        GGUF_TYPE_BOOL
        GGUF_TYPE_STRING
        GGUF_TYPE_ARRAY
        GGUF_TYPE_UINT64
        GGUF_TYPE_INT64
        GGUF_TYPE_FLOAT64

    struct gguf_context:
        pass
    struct ggml_context:
        pass
    struct gguf_init_params:
        bint no_alloc
        ggml_context ** ctx

    gguf_context * gguf_init_from_file(const char * fname, gguf_init_params params)
    void gguf_free(gguf_context * ctx)
    uint32_t gguf_get_version(const gguf_context * ctx)
    size_t gguf_get_data_offset(const gguf_context * ctx)
    int64_t gguf_get_n_kv(const gguf_context * ctx)
    const char * gguf_get_key(const gguf_context * ctx, int64_t key_id)
    gguf_type gguf_get_kv_type(const gguf_context * ctx, int64_t key_id)
    gguf_type gguf_get_arr_type(const gguf_context * ctx, int64_t key_id)
    uint8_t gguf_get_val_u8(const gguf_context * ctx, int64_t key_id)
    int8_t gguf_get_val_i8(const gguf_context * ctx, int64_t key_id)
    uint16_t gguf_get_val_u16(const gguf_context * ctx, int64_t key_id)
    int16_t gguf_get_val_i16(const gguf_context * ctx, int64_t key_id)
    uint32_t gguf_get_val_u32(const gguf_context * ctx, int64_t key_id)
    int32_t gguf_get_val_i32(const gguf_context * ctx, int64_t key_id)
    float gguf_get_val_f32(const gguf_context * ctx, int64_t key_id)
    uint64_t gguf_get_val_u64(const gguf_context * ctx, int64_t key_id)
    int64_t gguf_get_val_i64(const gguf_context * ctx, int64_t key_id)
    double gguf_get_val_f64(const gguf_context * ctx, int64_t key_id)
    bint gguf_get_val_bool(const gguf_context * ctx, int64_t key_id)
    const char * gguf_get_val_str(const gguf_context * ctx, int64_t key_id)
    size_t gguf_get_arr_n(const gguf_context * ctx, int64_t key_id)
    const void * gguf_get_arr_data(const gguf_context * ctx, int64_t key_id)
    const char * gguf_get_arr_str(const gguf_context * ctx, int64_t key_id, size_t i)
    int64_t gguf_get_n_tensors(const gguf_context * ctx)
    size_t gguf_get_tensor_offset(const gguf_context * ctx, int64_t tensor_id)
    size_t gguf_get_tensor_size(const gguf_context * ctx, int64_t tensor_id)
    const char * gguf_get_tensor_name(const gguf_context * ctx, int64_t tensor_id)
    const int64_t * gguf_get_tensor_ne(const gguf_context * ctx, int64_t tensor_id)


cdef extern from "llama.h" nogil:
    ctypedef int32_t llama_pos
    ctypedef int32_t llama_token
    ctypedef int32_t llama_seq_id

    struct llama_vocab:
        pass
    struct llama_model:
        pass
    struct llama_context:
        pass
    struct llama_memory_i:
        pass
    ctypedef llama_memory_i * llama_memory_t

    enum llama_vocab_type:
        LLAMA_VOCAB_TYPE_NONE
        LLAMA_VOCAB_TYPE_SPM
        LLAMA_VOCAB_TYPE_BPE
        LLAMA_VOCAB_TYPE_WPM
        LLAMA_VOCAB_TYPE_UGM
        LLAMA_VOCAB_TYPE_RWKV
        LLAMA_VOCAB_TYPE_PLAMO2

    enum llama_token_attr:
        LLAMA_TOKEN_ATTR_UNDEFINED
        LLAMA_TOKEN_ATTR_UNKNOWN
        LLAMA_TOKEN_ATTR_UNUSED
        LLAMA_TOKEN_ATTR_NORMAL
        LLAMA_TOKEN_ATTR_CONTROL
        LLAMA_TOKEN_ATTR_USER_DEFINED
        LLAMA_TOKEN_ATTR_BYTE
        LLAMA_TOKEN_ATTR_NORMALIZED
        LLAMA_TOKEN_ATTR_LSTRIP
        LLAMA_TOKEN_ATTR_RSTRIP
        LLAMA_TOKEN_ATTR_SINGLE_WORD

    enum llama_ftype:
        LLAMA_FTYPE_ALL_F32
        LLAMA_FTYPE_MOSTLY_F16
        LLAMA_FTYPE_MOSTLY_Q4_0
        LLAMA_FTYPE_MOSTLY_Q8_0
        LLAMA_FTYPE_MOSTLY_Q4_K_S
        LLAMA_FTYPE_MOSTLY_Q4_K_M
        LLAMA_FTYPE_MOSTLY_Q5_K_M
        LLAMA_FTYPE_MOSTLY_Q6_K
        LLAMA_FTYPE_MOSTLY_BF16

    enum llama_pooling_type:
        LLAMA_POOLING_TYPE_UNSPECIFIED
        LLAMA_POOLING_TYPE_NONE
        LLAMA_POOLING_TYPE_MEAN
        LLAMA_POOLING_TYPE_CLS
        LLAMA_POOLING_TYPE_LAST
        LLAMA_POOLING_TYPE_RANK

    enum llama_attention_type:
        LLAMA_ATTENTION_TYPE_UNSPECIFIED
        LLAMA_ATTENTION_TYPE_CAUSAL
        LLAMA_ATTENTION_TYPE_NON_CAUSAL

    enum llama_flash_attn_type:
        LLAMA_FLASH_ATTN_TYPE_AUTO
        LLAMA_FLASH_ATTN_TYPE_DISABLED
        LLAMA_FLASH_ATTN_TYPE_ENABLED

    enum llama_split_mode:
        LLAMA_SPLIT_MODE_NONE
        LLAMA_SPLIT_MODE_LAYER
        LLAMA_SPLIT_MODE_ROW

    enum llama_load_mode:
        LLAMA_LOAD_MODE_AUTO
        LLAMA_LOAD_MODE_NONE
        LLAMA_LOAD_MODE_MMAP
        LLAMA_LOAD_MODE_MLOCK
        LLAMA_LOAD_MODE_MMAP_MLOCK

    ctypedef struct llama_batch:
        int32_t n_tokens
        llama_token * token
        float * embd
        llama_pos * pos
        int32_t * n_seq_id
        llama_seq_id ** seq_id
        int8_t * logits

    # Partial declarations: Cython only touches the fields named here and
    # always starts from llama_*_default_params(), so the C layout is llama.h's.
    struct llama_model_params:
        # NULL-terminated list of devices to place the model on (NULL: all)
        ggml_backend_dev_t * devices
        # Proportion of the offloaded layers per device (llama_max_devices() floats; NULL or all 0: by free memory)
        const float * tensor_split
        int32_t n_gpu_layers
        llama_split_mode split_mode
        llama_load_mode load_mode
        int32_t main_gpu
        bint vocab_only
        bint check_tensors
        bint use_extra_bufts

    struct llama_context_params:
        uint32_t n_ctx
        uint32_t n_batch
        uint32_t n_ubatch
        uint32_t n_seq_max
        int32_t n_threads
        int32_t n_threads_batch
        llama_pooling_type pooling_type
        llama_attention_type attention_type
        llama_flash_attn_type flash_attn_type
        ggml_type type_k
        ggml_type type_v
        ggml_abort_callback abort_callback
        void * abort_callback_data
        bint embeddings
        bint offload_kqv
        bint no_perf
        bint swa_full
        bint kv_unified

    struct llama_model_quantize_params:
        int32_t nthread
        llama_ftype ftype
        bint allow_requantize

    struct llama_logit_bias:
        llama_token token
        float bias

    struct llama_chat_message:
        const char * role
        const char * content

    struct llama_sampler_chain_params:
        bint no_perf

    struct llama_sampler:
        pass

    struct llama_perf_context_data:
        double t_start_ms
        double t_load_ms
        double t_p_eval_ms
        double t_eval_ms
        int32_t n_p_eval
        int32_t n_eval
        int32_t n_reused

    struct llama_perf_sampler_data:
        double t_sample_ms
        int32_t n_sample

    # Library
    const char * llama_version()
    llama_model_params llama_model_default_params()
    llama_context_params llama_context_default_params()
    llama_sampler_chain_params llama_sampler_chain_default_params()
    llama_model_quantize_params llama_model_quantize_default_params()
    void llama_backend_init()
    size_t llama_max_devices()
    size_t llama_max_parallel_sequences()
    bint llama_supports_mmap()
    bint llama_supports_mlock()
    bint llama_supports_gpu_offload()
    const char * llama_print_system_info()
    void llama_log_set(ggml_log_callback log_callback, void * user_data)
    int64_t llama_time_us()

    # Model
    llama_model * llama_model_load_from_file(const char * path_model, llama_model_params params)
    void llama_model_free(llama_model * model)
    const llama_vocab * llama_model_get_vocab(const llama_model * model)
    int32_t llama_model_n_ctx_train(const llama_model * model)
    int32_t llama_model_n_embd(const llama_model * model)
    int32_t llama_model_n_embd_out(const llama_model * model)
    int32_t llama_model_n_layer(const llama_model * model)
    int32_t llama_model_n_head(const llama_model * model)
    int32_t llama_model_n_head_kv(const llama_model * model)
    int32_t llama_model_n_swa(const llama_model * model)
    int32_t llama_model_meta_val_str(const llama_model * model, const char * key, char * buf, size_t buf_size)
    int32_t llama_model_desc(const llama_model * model, char * buf, size_t buf_size)
    uint64_t llama_model_size(const llama_model * model)
    uint64_t llama_model_n_params(const llama_model * model)
    const char * llama_model_chat_template(const llama_model * model, const char * name)
    bint llama_model_has_encoder(const llama_model * model)
    bint llama_model_has_decoder(const llama_model * model)
    bint llama_model_is_recurrent(const llama_model * model)
    bint llama_model_is_hybrid(const llama_model * model)
    uint32_t llama_model_n_cls_out(const llama_model * model)
    uint32_t llama_model_quantize(const char * fname_inp, const char * fname_out,
                                  const llama_model_quantize_params * params)

    # LoRA adapters. An adapter is freed with its model unless freed first; a
    # context keeps pointers to the adapters set on it.
    struct llama_adapter_lora:
        pass
    llama_adapter_lora * llama_adapter_lora_init(llama_model * model, const char * path_lora)
    void llama_adapter_lora_free(llama_adapter_lora * adapter)
    int32_t llama_adapter_meta_val_str(const llama_adapter_lora * adapter, const char * key, char * buf,
                                       size_t buf_size)
    int32_t llama_adapter_meta_count(const llama_adapter_lora * adapter)
    int32_t llama_adapter_meta_key_by_index(const llama_adapter_lora * adapter, int32_t i, char * buf,
                                            size_t buf_size)
    int32_t llama_adapter_meta_val_str_by_index(const llama_adapter_lora * adapter, int32_t i, char * buf,
                                                size_t buf_size)
    uint64_t llama_adapter_get_alora_n_invocation_tokens(const llama_adapter_lora * adapter)
    # Replaces the context's adapters (adapters with a zero scale are left out); a no-op when unchanged.
    int32_t llama_set_adapters_lora(llama_context * ctx, llama_adapter_lora ** adapters, size_t n_adapters,
                                    float * scales)
    # Copies a control vector (n_embd floats a layer, from layer 1) into the context, added to the output of
    # the layers il_start..il_end; data NULL: none. -1 when n_embd is not the model's.
    int32_t llama_set_adapter_cvec(llama_context * ctx, const float * data, size_t len, int32_t n_embd,
                                   int32_t il_start, int32_t il_end)

    # Context
    llama_context * llama_init_from_model(llama_model * model, llama_context_params params)
    void llama_free(llama_context * ctx)
    uint32_t llama_n_ctx(const llama_context * ctx)
    uint32_t llama_n_ctx_seq(const llama_context * ctx)
    uint32_t llama_n_batch(const llama_context * ctx)
    uint32_t llama_n_ubatch(const llama_context * ctx)
    uint32_t llama_n_seq_max(const llama_context * ctx)
    llama_memory_t llama_get_memory(const llama_context * ctx)
    # The C function shares its name with its enum; Cython needs another name.
    llama_pooling_type llama_get_pooling_type "llama_pooling_type"(const llama_context * ctx)
    void llama_set_n_threads(llama_context * ctx, int32_t n_threads, int32_t n_threads_batch)
    # The pool must outlive its use by the context: free the context first.
    void llama_attach_threadpool(llama_context * ctx, ggml_threadpool_t threadpool, ggml_threadpool_t threadpool_batch)
    int32_t llama_n_threads(llama_context * ctx)
    int32_t llama_n_threads_batch(llama_context * ctx)
    void llama_set_embeddings(llama_context * ctx, bint embeddings)
    bint llama_get_causal_attn(const llama_context * ctx)
    void llama_set_abort_callback(llama_context * ctx, ggml_abort_callback abort_callback, void * abort_callback_data)
    void llama_synchronize(llama_context * ctx)

    void llama_memory_clear(llama_memory_t mem, bint data)
    bint llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1)
    void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id seq_id_src, llama_seq_id seq_id_dst, llama_pos p0, llama_pos p1)
    void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq_id)
    void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1, llama_pos delta)
    llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id)
    llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id)
    bint llama_memory_can_shift(llama_memory_t mem)

    size_t llama_state_get_size(llama_context * ctx)
    size_t llama_state_get_data(llama_context * ctx, uint8_t * dst, size_t size)
    size_t llama_state_set_data(llama_context * ctx, const uint8_t * src, size_t size)
    size_t llama_state_seq_get_size(llama_context * ctx, llama_seq_id seq_id)
    size_t llama_state_seq_get_data(llama_context * ctx, uint8_t * dst, size_t size, llama_seq_id seq_id)
    # 0: failed to load (no room, or data of another model / context)
    size_t llama_state_seq_set_data(llama_context * ctx, const uint8_t * src, size_t size, llama_seq_id dest_seq_id)
    bint llama_state_load_file(llama_context * ctx, const char * path_session, llama_token * tokens_out,
                               size_t n_token_capacity, size_t * n_token_count_out)
    bint llama_state_save_file(llama_context * ctx, const char * path_session, const llama_token * tokens,
                               size_t n_token_count)

    # Batch and inference
    llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max)
    void llama_batch_free(llama_batch batch)
    int32_t llama_encode(llama_context * ctx, llama_batch batch)
    int32_t llama_decode(llama_context * ctx, llama_batch batch)
    float * llama_get_logits_ith(llama_context * ctx, int32_t i)
    float * llama_get_embeddings_ith(llama_context * ctx, int32_t i)
    float * llama_get_embeddings_seq(llama_context * ctx, llama_seq_id seq_id)

    # Vocab
    llama_vocab_type llama_get_vocab_type "llama_vocab_type"(const llama_vocab * vocab)
    int32_t llama_vocab_n_tokens(const llama_vocab * vocab)
    const char * llama_vocab_get_text(const llama_vocab * vocab, llama_token token)
    float llama_vocab_get_score(const llama_vocab * vocab, llama_token token)
    llama_token_attr llama_vocab_get_attr(const llama_vocab * vocab, llama_token token)
    bint llama_vocab_is_eog(const llama_vocab * vocab, llama_token token)
    bint llama_vocab_is_control(const llama_vocab * vocab, llama_token token)
    llama_token llama_vocab_bos(const llama_vocab * vocab)
    llama_token llama_vocab_eos(const llama_vocab * vocab)
    llama_token llama_vocab_eot(const llama_vocab * vocab)
    llama_token llama_vocab_sep(const llama_vocab * vocab)
    llama_token llama_vocab_nl(const llama_vocab * vocab)
    llama_token llama_vocab_pad(const llama_vocab * vocab)
    llama_token llama_vocab_mask(const llama_vocab * vocab)
    bint llama_vocab_get_add_bos(const llama_vocab * vocab)
    bint llama_vocab_get_add_eos(const llama_vocab * vocab)
    bint llama_vocab_get_add_sep(const llama_vocab * vocab)
    llama_token llama_vocab_fim_pre(const llama_vocab * vocab)
    llama_token llama_vocab_fim_suf(const llama_vocab * vocab)
    llama_token llama_vocab_fim_mid(const llama_vocab * vocab)
    llama_token llama_vocab_fim_pad(const llama_vocab * vocab)
    llama_token llama_vocab_fim_rep(const llama_vocab * vocab)
    llama_token llama_vocab_fim_sep(const llama_vocab * vocab)
    int32_t llama_tokenize(const llama_vocab * vocab, const char * text, int32_t text_len,
                           llama_token * tokens, int32_t n_tokens_max, bint add_special, bint parse_special)
    int32_t llama_token_to_piece(const llama_vocab * vocab, llama_token token, char * buf, int32_t length,
                                 int32_t lstrip, bint special)
    int32_t llama_detokenize(const llama_vocab * vocab, const llama_token * tokens, int32_t n_tokens,
                             char * text, int32_t text_len_max, bint remove_special, bint unparse_special)

    # Chat templates (llama.cpp's built-in, non-Jinja formats)
    int32_t llama_chat_apply_template(const char * tmpl, const llama_chat_message * chat, size_t n_msg,
                                      bint add_ass, char * buf, int32_t length)

    # Samplers
    ctypedef struct llama_token_data:
        llama_token id
        float logit
        float p

    ctypedef struct llama_token_data_array:
        llama_token_data * data
        size_t size
        int64_t selected
        cppbool sorted

    void llama_sampler_apply(llama_sampler * smpl, llama_token_data_array * cur_p)
    llama_sampler * llama_sampler_chain_init(llama_sampler_chain_params params)
    void llama_sampler_chain_add(llama_sampler * chain, llama_sampler * smpl)
    int32_t llama_sampler_chain_n(const llama_sampler * chain)
    const char * llama_sampler_name(const llama_sampler * smpl)
    void llama_sampler_accept(llama_sampler * smpl, llama_token token)
    void llama_sampler_reset(llama_sampler * smpl)
    void llama_sampler_free(llama_sampler * smpl)
    llama_token llama_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx)
    uint32_t llama_sampler_get_seed(const llama_sampler * smpl)
    llama_sampler * llama_sampler_init_greedy()
    llama_sampler * llama_sampler_init_dist(uint32_t seed)
    llama_sampler * llama_sampler_init_top_k(int32_t k)
    llama_sampler * llama_sampler_init_top_p(float p, size_t min_keep)
    llama_sampler * llama_sampler_init_min_p(float p, size_t min_keep)
    llama_sampler * llama_sampler_init_typical(float p, size_t min_keep)
    llama_sampler * llama_sampler_init_temp(float t)
    llama_sampler * llama_sampler_init_penalties(int32_t n_vocab, int32_t penalty_last_n, float penalty_repeat,
                                                 float penalty_freq, float penalty_present)
    llama_sampler * llama_sampler_init_logit_bias(int32_t n_vocab, int32_t n_logit_bias,
                                                  const llama_logit_bias * logit_bias)
    llama_sampler * llama_sampler_init_grammar(const llama_vocab * vocab, const char * grammar_str,
                                               const char * grammar_root)
    llama_sampler * llama_sampler_init_grammar_lazy_patterns(
        const llama_vocab * vocab, const char * grammar_str, const char * grammar_root,
        const char ** trigger_patterns, size_t num_trigger_patterns,
        const llama_token * trigger_tokens, size_t num_trigger_tokens)

    # Performance
    llama_perf_context_data llama_perf_context(const llama_context * ctx)
    void llama_perf_context_reset(llama_context * ctx)
    llama_perf_sampler_data llama_perf_sampler(const llama_sampler * chain)
    void llama_perf_sampler_reset(llama_sampler * chain)
