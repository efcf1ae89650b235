# Projector: a multimodal projector (libmtmd's mtmd_context) beside its Model;
# Media: one decoded image or audio clip; MediaChunk: one piece of a prompt
# that mixes text and media, as mtmd_tokenize splits it.
#
# The flow (as mtmd-cli.cpp runs it): load_media() decodes the bytes of each
# image, tokenize() splits a rendered prompt at its media markers into text
# chunks (token ids) and media chunks (one per image), and the engine feeds
# the text to the model as usual and each media chunk through
# Stepper.eval_media(): the projector encodes it into embeddings, which are
# decoded into the sequence's KV cache at the chunk's positions.
#
# libmtmd aborts the process on some inputs it does not expect; what is
# checked here first: an image larger than the pixel limit and an audio clip
# longer than the duration limit (decoding would allocate without bound: the
# sizes come from the files' headers), audio of fewer than two samples (an
# assertion in mtmd_tokenize), a projector whose image layout needs a token the
# text vocabulary lacks (the chunk would carry id -1), and image tokens that
# do not fit one micro-batch of a model that attends to them non-causally.
#
# M-RoPE projectors (Qwen2-VL and later) give an image chunk fewer positions
# than tokens (n_pos = max(width, height) of its token grid, every token a
# 2-D position from the chunk's first one); mtmd_helper_decode_image_chunk
# builds those positions from the n_past it is given, and the Stepper tracks
# each slot's position apart from its cell count.

from libc.stdint cimport uintptr_t

cimport mtmd

import secrets as _secrets
import time as _time

# Pixels an image may have (width x height): 32 Mi, e.g. 8192 x 4096. stb_image
# decodes into 3 bytes a pixel and libmtmd copies the result once, so the
# limit bounds an image's memory at about 200 MB however small its file.
MAX_IMAGE_PIXELS = 1 << 25

# Seconds an audio clip may last: 10 minutes. libmtmd decodes a clip whole into
# float samples at the projector's rate (16 kHz for Whisper encoders: 64 kB a
# second), copies them once, and makes a mel spectrogram of about the same size
# (twice, padded with 30 s of silence): about 250 kB a second, 150 MB for the
# limit. Ten minutes is also 20 of the Whisper encoders' 30-second windows,
# 3,750 to 15,000 embeddings, more than most contexts hold.
MAX_AUDIO_SECONDS = 600.0

# Fewer samples fail an assertion in mtmd_tokenize (which aborts the process).
cdef uint64_t _MIN_AUDIO_SAMPLES = 2

# libmtmd's Whisper-encoder projectors that stack frames (clip-model.h's audio_has_stack_frames).
_STACKING_AUDIO = ("ultravox", "voxtral", "meralion")


cdef str _audio_window_mismatch(dict meta):
    """Why libmtmd would abort encoding this projector's audio, or None.

    A 30-second window is 3,000 mel frames, 1,500 positions after the
    encoder's stride-2 convolution. clip.cpp counts a window's embeddings as
    ceil(3000 / k) / 2 (rounded down) for a stack factor k, while its graph
    stacks the 1,500 positions into ceil(1500 / k) rows, and clip_encode
    aborts the process (GGML_ABORT) when the two differ: at k = 8
    (Ultravox's) they are 187 and 188.
    """
    if meta.get("clip.has_audio_encoder") is not True:
        return None
    kind = meta.get("clip.audio.projector_type") or meta.get("clip.projector_type")
    k = meta.get("clip.audio.projector.stack_factor")
    if kind not in _STACKING_AUDIO or not isinstance(k, int) or k <= 0:
        return None
    counted = (3000 + k - 1) // k // 2
    made = (1500 + k - 1) // k
    if counted == made:
        return None
    return (f"this projector's {kind} audio encoder stacks {k} frames, so a 30-second window makes {made} "
            f"embeddings where libmtmd counts {counted}, and libmtmd aborts on the mismatch: the llama.cpp "
            f"this build vendors cannot run its audio")

# One marker per process, random, as llama-server does: text a user writes that
# contains libmtmd's default marker ("<__media__>") cannot open a media slot.
cdef bytes _MEDIA_MARKER = f"<__media_{_secrets.token_hex(8)}__>".encode()

_CHUNK_KINDS = {
    mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT: "text",
    mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE: "image",
    mtmd.MTMD_INPUT_CHUNK_TYPE_AUDIO: "audio",
}

cdef bint _mtmd_log_installed = False


cdef str _gguf_architecture(str path):
    """``general.architecture`` of the GGUF at ``path`` (None without one), after the checks of
    ``_gguf_open`` (magic, header, tensor data inside the file), which fail as ProjectorLoadError here."""
    cdef llama.gguf_context * g
    try:
        g = _gguf_open(path)
    except ModelLoadError as exc:
        raise ProjectorLoadError(str(exc).replace("model", "projector"), path) from None
    cdef int64_t k
    try:
        k = gguf_find_key(g, b"general.architecture")
        if k < 0 or llama.gguf_get_kv_type(g, k) != llama.GGUF_TYPE_STRING:
            return None
        return _gguf_value(g, k, False)
    finally:
        llama.gguf_free(g)


cdef class Media:
    """One image (RGB pixels) or audio clip (PCM samples), decoded by libmtmd; made by :meth:`Projector.load_media`.

    Attributes:
        kind: ``"image"`` or ``"audio"``.
        is_audio: ``kind == "audio"``.
        width, height: pixels of an image; for audio ``width`` is the number
            of samples (mono, at ``sample_rate``) and ``height`` 1.
        sample_rate: samples a second of audio (the projector's rate); 0 for an image.
        duration: seconds of audio; 0.0 for an image.
        nbytes: bytes of decoded data libmtmd holds.
        id: SHA-256 (hex) of the encoded bytes: equal files, equal ids.
    """

    cdef mtmd.mtmd_bitmap * _ptr
    cdef readonly str kind
    cdef readonly str id
    cdef readonly int sample_rate

    def __cinit__(self):
        self._ptr = NULL

    def __init__(self):
        raise TypeError("Media objects are made by Projector.load_media()")

    def __dealloc__(self):
        if self._ptr != NULL:
            mtmd.mtmd_bitmap_free(self._ptr)
            self._ptr = NULL

    @property
    def width(self) -> int:
        return mtmd.mtmd_bitmap_get_nx(self._ptr)

    @property
    def height(self) -> int:
        return mtmd.mtmd_bitmap_get_ny(self._ptr)

    @property
    def nbytes(self) -> int:
        return mtmd.mtmd_bitmap_get_n_bytes(self._ptr)

    @property
    def is_audio(self) -> bool:
        return self.kind == "audio"

    @property
    def duration(self) -> float:
        if self.sample_rate <= 0:
            return 0.0
        return <double> mtmd.mtmd_bitmap_get_nx(self._ptr) / self.sample_rate

    def __repr__(self) -> str:
        if self.kind == "audio":
            return f"<Media audio {self.duration:.2f}s {self.id[:12]}>"
        return f"<Media {self.kind} {self.width}x{self.height} {self.id[:12]}>"


cdef class MediaChunk:
    """One piece of a tokenized multimodal prompt (a copy of libmtmd's chunk, owned here).

    Attributes:
        kind: ``"text"``, ``"image"`` or ``"audio"``.
        n_tokens: the tokens (text) or embeddings (media) the chunk puts into the context.
        n_pos: the positions it takes: ``n_tokens``, except for an image of
            an M-RoPE projector (:attr:`Projector.mrope`), whose tokens share
            2-D positions and take ``max(width, height)`` of its token grid.
        id: the media's id (the SHA-256 of its file), ``""`` for text.
        tokens: the token ids of a text chunk (int32 array); None for media.
    """

    cdef mtmd.mtmd_input_chunk * _ptr
    cdef readonly str kind
    cdef readonly str id
    cdef readonly object tokens
    cdef readonly Py_ssize_t n_tokens
    cdef readonly Py_ssize_t n_pos
    cdef readonly Projector projector

    def __cinit__(self):
        self._ptr = NULL

    def __init__(self):
        raise TypeError("MediaChunk objects are made by Projector.tokenize()")

    def __dealloc__(self):
        if self._ptr != NULL:
            mtmd.mtmd_input_chunk_free(self._ptr)
            self._ptr = NULL

    def __repr__(self) -> str:
        return f"<MediaChunk {self.kind} n_tokens={self.n_tokens}{' ' + self.id[:12] if self.id else ''}>"


cdef class Projector:
    """A multimodal projector GGUF (a llama.cpp ``mmproj`` file) for a loaded text model.

    Owns libmtmd's context; keeps ``model`` alive, and ``model.close()`` is
    refused while the projector is open (libmtmd must be freed first).

    Args:
        path: the projector ``.gguf`` (``general.architecture`` = ``clip``).
        model: the text model it projects into (its embedding size must match).
        n_threads: CPU threads for encoding (default: the process's CPU limit).
        use_gpu: encode on a GPU backend when one is loaded.
        max_image_pixels: largest image accepted by :meth:`load_media`
            (width x height; default :data:`MAX_IMAGE_PIXELS`).
        max_audio_seconds: longest audio clip accepted by :meth:`load_media`
            (seconds; default :data:`MAX_AUDIO_SECONDS`).
        image_max_tokens: most tokens an image may become, for projectors
            with dynamic resolution (-1: the projector's own setting).
        flash_attn: the encoder's flash attention, ``"auto"`` (None),
            ``"on"``/True or ``"off"``/False, as the ``flash_attn`` of
            :class:`Context`. llama.cpp's ``-fa`` sets both the text context's
            and the encoder's; "auto" turns it on where the backend has it.

    Attributes:
        mrope: the text model takes the projector's images at M-RoPE
            positions (Qwen2-VL and later): an image chunk's ``n_pos`` is
            smaller than its ``n_tokens``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ProjectorLoadError: not a projector libmtmd can load, or one made for
            another model (embedding size).
        ValueError: the model is closed or loaded vocabulary-only.
    """

    cdef mtmd.mtmd_context * _ptr
    cdef readonly Model model
    cdef readonly str path
    cdef readonly Py_ssize_t max_image_pixels
    cdef readonly double max_audio_seconds
    cdef str _audio_refusal  # why its audio is refused (None: taken)
    cdef readonly bint mrope
    cdef bint _busy

    def __cinit__(self):
        self._ptr = NULL
        self._busy = False

    def __init__(self, path, Model model not None, *, n_threads=None, bint use_gpu=True,
                 Py_ssize_t max_image_pixels=MAX_IMAGE_PIXELS, double max_audio_seconds=MAX_AUDIO_SECONDS,
                 int image_max_tokens=-1, flash_attn="auto"):
        global _mtmd_log_installed
        if self._ptr != NULL:
            raise RuntimeError("the projector is already open")
        model._check()
        if model.vocab_only:
            raise ValueError("the model was loaded vocabulary-only: a projector needs its weights")
        if max_image_pixels <= 0:
            raise ValueError(f"max_image_pixels must be > 0, got {max_image_pixels}")
        if not max_audio_seconds > 0:  # also NaN
            raise ValueError(f"max_audio_seconds must be > 0, got {max_audio_seconds}")
        self.path = _os.fspath(path)
        if not _os.path.isfile(self.path):
            raise FileNotFoundError(f"no projector file at {self.path!r}")
        arch = _gguf_architecture(self.path)
        if arch != "clip":
            raise ProjectorLoadError(
                f"{self.path!r} is not a projector: its general.architecture is {arch!r}, not 'clip' "
                f"(a multimodal projector is llama.cpp's mmproj GGUF)", self.path)
        if not _mtmd_log_installed:
            # libmtmd logs through its own callback (and its helpers through
            # another): route both to the "llamanative.native" logger.
            mtmd.mtmd_helper_log_set(_log_callback, NULL)
            _mtmd_log_installed = True
        cdef mtmd.mtmd_context_params p = mtmd.mtmd_context_params_default()
        p.use_gpu = use_gpu
        cdef vector[llama.ggml_backend_dev_t] gpus
        if use_gpu and _rpc_devices:
            # libmtmd's default is the first GPU device, which may be a server added for a model:
            # the encoder runs on this machine's own GPU, or its CPU.
            _local_gpus(gpus)
            if gpus.empty():
                p.use_gpu = False
            else:
                p.device = gpus[0]
        p.print_timings = False
        p.n_threads = _cpu_limit().cpus if n_threads is None else int(n_threads)
        if p.n_threads <= 0:
            raise ValueError(f"n_threads must be > 0, got {p.n_threads}")
        p.media_marker = _MEDIA_MARKER
        # The warm-up encode also settles libmtmd's flash-attention "auto" (without it the
        # encoder never uses flash attention, and its embeddings differ from llama-server's).
        p.warmup = True
        p.flash_attn_type = _choice(_FLASH_ATTN, flash_attn, "flash_attn")
        p.image_max_tokens = image_max_tokens
        cdef bytes bpath = _os.fsencode(self.path)
        cdef const char * cpath = bpath
        with nogil:
            self._ptr = mtmd.mtmd_init_from_file(cpath, model._ptr, p)
        if self._ptr == NULL:
            raise ProjectorLoadError(
                f"libmtmd could not load the projector {self.path!r}: not a projector it supports, a corrupt "
                f"or truncated file, or one made for another text model (the embedding sizes differ); "
                f"set llamanative._core.set_log_level('INFO') for its log", self.path)
        # M-RoPE (Qwen2-VL and later): media chunks take other positions than cells.
        self.mrope = mtmd.mtmd_decode_use_mrope(self._ptr)
        self.model = model
        self.max_image_pixels = max_image_pixels
        self.max_audio_seconds = max_audio_seconds
        self._audio_refusal = None
        if mtmd.mtmd_support_audio(self._ptr):
            self._audio_refusal = _audio_window_mismatch(read_gguf_metadata(self.path, arrays=False))
        model._n_contexts += 1

    def __dealloc__(self):
        if self._ptr != NULL:
            mtmd.mtmd_free(self._ptr)
            self._ptr = NULL
            if self.model is not None:
                self.model._n_contexts -= 1

    def close(self) -> None:
        """Free libmtmd's context (before the model). Safe to call twice."""
        if self._busy:
            raise ContextBusyError("this Projector is in use by another thread")
        if self._ptr != NULL:
            mtmd.mtmd_free(self._ptr)
            self._ptr = NULL
            self.model._n_contexts -= 1

    @property
    def closed(self) -> bool:
        return self._ptr == NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef inline int _check(self) except -1:
        if self._ptr == NULL:
            raise ValueError("the projector is closed")
        return 0

    @property
    def vision(self) -> bool:
        """Whether the projector takes images."""
        self._check()
        return mtmd.mtmd_support_vision(self._ptr)

    @property
    def audio(self) -> bool:
        """Whether the projector takes audio."""
        self._check()
        return mtmd.mtmd_support_audio(self._ptr)

    @property
    def audio_sample_rate(self) -> int:
        """Samples per second audio is resampled to (-1 without audio)."""
        self._check()
        return mtmd.mtmd_get_audio_sample_rate(self._ptr)

    @property
    def marker(self) -> str:
        """The text that stands for one image or audio clip in a prompt given to :meth:`tokenize`."""
        return _MEDIA_MARKER.decode()

    def load_media(self, data, kind=None) -> Media:
        """Decode an encoded image (JPEG, PNG, BMP, GIF's first frame, as stb_image
        reads them; also PSD, TGA, HDR and PNM, but not Softimage PIC) or audio
        clip (WAV, MP3, FLAC, resampled to mono at :attr:`audio_sample_rate`)
        from bytes in memory, with the GIL released.

        Which one the bytes are is libmtmd's helper's test: a WAV, MP3 (ID3
        tag or MPEG sync word) or FLAC start is audio, anything else is tried
        as an image. The header is read first: an image over
        ``max_image_pixels`` or audio longer than ``max_audio_seconds`` is
        refused before anything is decoded.

        Args:
            data: a bytes-like object holding the whole file (not copied).
            kind: ``"image"`` or ``"audio"`` to accept only that kind; None
                (default) accepts either.

        Raises:
            MediaError: empty data, not an image or audio format libmtmd
                decodes (WebP needs an ffmpeg build of libmtmd; Softimage PIC,
                which stb_image crashes on when corrupt), corrupt or
                truncated data, an image over ``max_image_pixels``, audio over
                ``max_audio_seconds`` or of fewer than two samples, a kind of
                media the projector does not take, or not the ``kind`` asked for.
            ValueError: ``kind`` is not None, ``"image"`` or ``"audio"``.
        """
        self._check()
        if kind is not None and kind != "image" and kind != "audio":
            raise ValueError(f"kind must be None, 'image' or 'audio', not {kind!r}")
        cdef const unsigned char[::1] buf
        try:
            buf = memoryview(data).cast("B")
        except TypeError as exc:
            raise TypeError(f"media data must be bytes-like, not {type(data).__name__}") from exc
        cdef size_t n = buf.shape[0]
        if n == 0:
            raise MediaError("the media data is empty (0 bytes)")
        cdef const unsigned char * p = &buf[0]
        cdef int w = 0, h = 0, is_image = 0, is_audio, ok
        cdef int rate = mtmd.mtmd_get_audio_sample_rate(self._ptr)
        cdef uint64_t frames = 0
        is_audio = mtmd.lln_is_audio(p, n)
        if is_audio:
            if kind == "image":
                raise MediaError("an audio file (WAV, MP3 or FLAC), not an image")
            if not mtmd.mtmd_support_audio(self._ptr) or rate <= 0:
                raise MediaError("this projector takes images, not audio")
            if self._audio_refusal is not None:
                raise MediaError(self._audio_refusal)
            with nogil:
                ok = mtmd.lln_audio_info(p, n, rate, &frames)
            if not ok:
                raise MediaError("the audio is corrupt or truncated, or not in a format libmtmd decodes "
                                 "(WAV, MP3, FLAC)")
            if frames < _MIN_AUDIO_SAMPLES:
                raise MediaError(f"the audio holds {frames} sample(s) at {rate} Hz: nothing to listen to")
            seconds = <double> frames / rate
            if seconds > self.max_audio_seconds:
                raise MediaError(
                    f"the audio lasts {seconds:.1f} s, more than the limit of {self.max_audio_seconds:g} s "
                    f"(max_audio_seconds); cut it first")
        else:
            with nogil:
                is_image = mtmd.lln_image_info(p, n, &w, &h)
            if kind == "audio":
                raise MediaError("an image, not an audio file" if is_image else
                                 "not an audio file libmtmd decodes (WAV, MP3, FLAC)")
            if n >= 92 and bytes(buf[:4]) == b"\x53\x80\xf6\x34" and bytes(buf[88:92]) == b"PICT":
                # stb_image's Softimage PIC loader (its test: these two signatures) converts a failed
                # decode's NULL buffer to RGB, a segfault for any corrupt or truncated PIC file.
                raise MediaError("Softimage PIC images are not supported (JPEG, PNG, BMP, GIF are); "
                                 "convert the image to PNG or JPEG")
        if is_image:
            if w <= 0 or h <= 0:
                raise MediaError(f"the image header gives a size of {w}x{h} pixels")
            if <int64_t> w * h > self.max_image_pixels:
                raise MediaError(
                    f"the image is {w}x{h} pixels, more than the limit of {self.max_image_pixels} pixels "
                    f"(max_image_pixels); scale it down first")
            if not mtmd.mtmd_support_vision(self._ptr):
                raise MediaError("this projector takes audio, not images")
        elif not is_audio and n >= 12 and bytes(buf[:4]) == b"RIFF" and bytes(buf[8:12]) == b"WEBP":
            raise MediaError("WebP images are not supported by this build (stb_image reads JPEG, PNG, BMP, GIF); "
                             "convert the image to PNG or JPEG")
        cdef mtmd.mtmd_helper_bitmap_wrapper out
        cdef mtmd.mtmd_helper_init_opt opt = mtmd.mtmd_helper_init_opt_default()
        with nogil:
            out = mtmd.mtmd_helper_bitmap_init_from_buf(self._ptr, p, n, False, opt)
        if out.video_ctx != NULL:  # not built with video support; never expected
            mtmd.mtmd_helper_video_free(out.video_ctx)
            if out.bitmap != NULL:
                mtmd.mtmd_bitmap_free(out.bitmap)
            raise MediaError("video input is not supported")
        if out.bitmap == NULL:
            if is_image:
                what = "the image is corrupt or truncated"
            elif is_audio:
                what = "the audio is corrupt or truncated"
            elif kind == "image":
                what = "not an image libmtmd decodes (JPEG, PNG, BMP, GIF), or a corrupt or truncated one"
            else:
                what = ("not an image or audio file libmtmd decodes (JPEG, PNG, BMP, GIF; WAV, MP3, FLAC), "
                        "or a corrupt or truncated one")
            raise MediaError(what)
        cdef Media m = Media.__new__(Media)
        m._ptr = out.bitmap
        m.kind = "audio" if mtmd.mtmd_bitmap_is_audio(out.bitmap) else "image"
        m.sample_rate = rate if m.kind == "audio" else 0
        cdef const char * mid = mtmd.mtmd_bitmap_get_id(out.bitmap)
        m.id = mid[:strlen(mid)].decode() if mid != NULL else ""
        # Backstops: the checks above predict the helper's choice and length.
        if m.kind == "audio" and not mtmd.mtmd_support_audio(self._ptr):
            raise MediaError("this projector takes images, not audio")
        if m.kind == "audio" and <uint64_t> mtmd.mtmd_bitmap_get_nx(out.bitmap) < _MIN_AUDIO_SAMPLES:
            raise MediaError("the audio holds no samples")
        if kind is not None and m.kind != kind:
            raise MediaError(f"an {m.kind}, not an {kind}" if m.kind == "image" else f"an audio file, not an {kind}")
        return m

    def tokenize(self, str text, media=(), *, bint add_special=True, bint parse_special=True) -> list:
        """Split ``text`` at its media markers (:attr:`marker`) into text and media chunks.

        Args:
            text: the rendered prompt, one marker where each of ``media`` goes, in order.
            media: :class:`Media` objects, as many as markers.
            add_special: add the vocabulary's BOS (as ``Vocab.tokenize``).
            parse_special: parse special-token text in ``text``.

        Returns:
            list of :class:`MediaChunk`, in prompt order.

        Raises:
            ValueError: the markers and ``media`` differ in number, or the
                text model's vocabulary lacks a token this projector's image
                layout needs.
            MediaError: libmtmd could not preprocess an image.
        """
        self._check()
        cdef list items = list(media)
        cdef Media m
        cdef vector[const mtmd.mtmd_bitmap *] bitmaps
        for item in items:
            if not isinstance(item, Media):
                raise TypeError(f"media must be Media objects (Projector.load_media), not {type(item).__name__}")
            m = <Media> item
            bitmaps.push_back(m._ptr)
        n_markers = text.count(self.marker)
        if n_markers != len(items):
            raise ValueError(f"the prompt has {n_markers} media marker(s) for {len(items)} media")
        cdef bytes btext = text.encode("utf-8", "surrogatepass")
        cdef mtmd.mtmd_input_text t
        t.text = btext
        t.text_len = len(btext)
        t.add_special = add_special
        t.parse_special = parse_special
        cdef mtmd.mtmd_input_chunks * chunks = mtmd.mtmd_input_chunks_init()
        if chunks == NULL:
            raise MemoryError()
        cdef int32_t rc
        cdef size_t i, n_text, j
        cdef const mtmd.mtmd_input_chunk * c
        cdef const llama_token * toks
        cdef MediaChunk mc
        cdef int32_t n_vocab = llama.llama_vocab_n_tokens(llama.llama_model_get_vocab(self.model._ptr))
        out = []
        try:
            with nogil:
                rc = mtmd.mtmd_tokenize(self._ptr, chunks, &t, bitmaps.data(), bitmaps.size())
            if rc == 1:
                raise ValueError("the prompt's media markers and the media differ in number")
            if rc != 0:
                raise MediaError(f"libmtmd could not preprocess the media (code {rc})")
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                c = mtmd.mtmd_input_chunks_get(chunks, i)
                mc = MediaChunk.__new__(MediaChunk)
                mc.kind = _CHUNK_KINDS.get(mtmd.mtmd_input_chunk_get_type(c), "unknown")
                mc.n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(c)
                mc.n_pos = mtmd.mtmd_input_chunk_get_n_pos(c)
                mc.projector = self
                if mc.kind == "text":
                    n_text = 0
                    toks = mtmd.mtmd_input_chunk_get_tokens_text(c, &n_text)
                    arr = np.empty(n_text, dtype=np.int32)
                    if n_text:
                        memcpy(<void *> cnp.PyArray_DATA(arr), toks, n_text * sizeof(llama_token))
                    if n_text and (arr.min() < 0 or arr.max() >= n_vocab):
                        raise ValueError(
                            "this projector's image layout needs a token the text model's vocabulary does not "
                            "have: the projector was made for another text model")
                    mc.tokens = arr
                    mc.id = ""
                else:
                    mc.tokens = None
                    mid = mtmd.mtmd_input_chunk_get_id(c)
                    mc.id = mid[:strlen(mid)].decode() if mid != NULL else ""
                mc._ptr = mtmd.mtmd_input_chunk_copy(c)
                if mc._ptr == NULL:
                    raise MemoryError()
                out.append(mc)
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
        return out

    cdef int _eval(self, _ContextDecode ctx, MediaChunk chunk, llama_pos n_past, llama_seq_id seq,
                   int64_t * times) except -1:
        """Encode ``chunk`` and decode its embeddings into ``seq`` from position ``n_past``
        (the slot's position, not its cell count, for an M-RoPE projector).

        The caller holds the context's guard. ``times``: encode and decode nanoseconds.
        """
        if chunk._ptr == NULL or chunk.kind == "text":
            raise ValueError("only an image or audio chunk is evaluated by the projector")
        if chunk.projector is not self:
            raise ValueError("the chunk was made by another projector")
        if n_past < 0 or <uint32_t> (n_past + chunk.n_pos) > ctx._n_ctx_seq:
            raise ValueError(f"the media chunk's {chunk.n_pos} positions from {n_past} exceed the context "
                             f"(n_ctx={ctx._n_ctx_seq})")
        if <uint32_t> seq >= ctx._n_seq_max:
            raise ValueError(f"sequence id {seq} is out of range (n_seq_max={ctx._n_seq_max})")
        cdef bint non_causal = mtmd.mtmd_decode_use_non_causal(self._ptr, chunk._ptr)
        if non_causal and <uint32_t> chunk.n_tokens > ctx._n_ubatch:
            # llama.cpp needs a non-causal input whole in one micro-batch (it aborts otherwise).
            raise ValueError(f"the {chunk.kind} takes {chunk.n_tokens} tokens, which this model attends to at "
                             f"once: they must fit n_ubatch={ctx._n_ubatch} (raise num_batch)")
        if self._busy:
            raise ContextBusyError("this Projector is in use by another thread")
        self._busy = True
        cdef int32_t rc
        cdef llama_pos new_n_past = n_past
        cdef float * embd
        cdef int32_t n_batch = <int32_t> ctx._n_batch
        cdef int64_t t0 = _time.perf_counter_ns(), t1
        try:
            with nogil:
                # The text context's workers may still be spinning after its last decode, on the cores the
                # encoder's own threads are about to use (docs/design/images.md: an encode took 4-5 times as long).
                ctx._threads.pause()
                rc = mtmd.mtmd_encode_chunk(self._ptr, chunk._ptr)
            t1 = _time.perf_counter_ns()
            times[0] = t1 - t0
            if rc != 0:
                raise MediaError(f"libmtmd could not encode the {chunk.kind} (code {rc})")
            embd = mtmd.mtmd_get_output_embd(self._ptr)
            if embd == NULL:
                raise MediaError(f"libmtmd returned no embeddings for the {chunk.kind}")
            with nogil:
                rc = mtmd.mtmd_helper_decode_image_chunk(self._ptr, ctx._ptr, chunk._ptr, embd, n_past, seq,
                                                         n_batch, &new_n_past, NULL, NULL)
            times[1] = _time.perf_counter_ns() - t1
        finally:
            self._busy = False
            ctx._abort_flag = 0
            # The embeddings' batches request no outputs: no earlier output is readable now.
            ctx._forget_outputs()
        if rc != 0:
            if rc == 1 or rc == 2 or rc == -1:
                raise _decode_error(rc, "decode")
            raise _decode_error(rc if rc < -1 else -2, "decode")
        return 0
