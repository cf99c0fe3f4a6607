package org.rwkv7;

import java.io.IOException;

/**
 * An RWKV-7 model file, memory-mapped (not copied): the plain-Java API. Kotlin code uses
 * {@code RwkvModel}, which wraps this class.
 *
 * <p>Thread-safe: sessions on one model may run on different threads. {@link #close()}
 * releases the handle; the mapping itself lives until the last session on the model is
 * closed too. Closing twice, or using the model after closing it, throws
 * {@link IllegalStateException}.
 */
public final class NativeModel implements AutoCloseable {
    private final long handle;

    private NativeModel(long handle) {
        this.handle = handle;
    }

    /**
     * Maps and validates the GGUF model at {@code path}.
     *
     * @throws java.io.FileNotFoundException if it does not exist
     * @throws IOException if it cannot be read or mapped
     * @throws RwkvException if it is not a valid RWKV-7 model
     */
    public static NativeModel load(String path) throws IOException {
        return new NativeModel(RwkvNative.modelOpen(path));
    }

    /** A new session at the zero state. */
    public NativeSession newSession() {
        return new NativeSession(RwkvNative.sessionNew(handle));
    }

    /** Token ids of {@code text} ({@link RwkvException} if the file has no tokenizer). */
    public int[] tokenize(String text) {
        return RwkvNative.modelTokenize(handle, text);
    }

    /** Text of {@code tokens} (U+FFFD for invalid UTF-8). */
    public String detokenize(int[] tokens) {
        return RwkvNative.modelDetokenize(handle, tokens);
    }

    /** Vocabulary size (rows of the embedding). */
    public int vocabSize() {
        return RwkvNative.modelDims(handle)[4];
    }

    /** Number of layers. */
    public int layers() {
        return RwkvNative.modelDims(handle)[0];
    }

    /** Embedding width. */
    public int embedding() {
        return RwkvNative.modelDims(handle)[1];
    }

    /** A one-line description (dimensions, kernel set, tokenizer, file). */
    public String describe() {
        return RwkvNative.modelDescribe(handle);
    }

    /** Releases the model handle. Throws {@link IllegalStateException} if already closed. */
    @Override
    public void close() {
        RwkvNative.modelClose(handle);
    }
}
