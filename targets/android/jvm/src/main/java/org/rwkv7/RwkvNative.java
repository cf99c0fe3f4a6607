package org.rwkv7;

import java.io.IOException;

/**
 * The native methods of {@code librwkv7_android.so}, one to one (Rust:
 * {@code targets/android/src/jni.rs}). Apps use {@link NativeModel} / {@link NativeSession}
 * (Java) or {@code RwkvModel} / {@code RwkvSession} (Kotlin) instead.
 *
 * <p>Handles are opaque ids from the native handle table, never pointers: a closed, forged or
 * wrong-kind handle makes a call throw {@link IllegalStateException}. Errors are thrown as
 * {@link IOException} (file errors; {@link java.io.FileNotFoundException} for a missing file),
 * {@link IllegalStateException}, {@link IllegalArgumentException},
 * {@link NullPointerException}, {@link java.util.concurrent.CancellationException} (a cancelled
 * prefill) or {@link RwkvException} (anything else, including a caught Rust panic).
 *
 * <p>The library is loaded by {@code System.loadLibrary("rwkv7_android")} (on Android it comes
 * from the APK's {@code jniLibs}), or from the absolute path in the system property
 * {@code rwkv7.library.path} when that is set (host tests).
 */
public final class RwkvNative {
    /** The system property naming the library file to load instead of searching. */
    public static final String LIBRARY_PATH_PROPERTY = "rwkv7.library.path";

    static {
        String path = System.getProperty(LIBRARY_PATH_PROPERTY);
        if (path != null && !path.isEmpty()) {
            System.load(new java.io.File(path).getAbsolutePath());
        } else {
            System.loadLibrary("rwkv7_android");
        }
    }

    private RwkvNative() {}

    /** The native crate's version. */
    public static native String nativeVersion();

    /** Panics inside native code; throws {@link RwkvException}. For tests of the boundary. */
    public static native void panicForTest(String message);

    /** Maps the model file (no copy) and validates it; returns a model handle. */
    public static native long modelOpen(String path) throws IOException;

    /** Releases the model handle; sessions on it stay usable. Throws if already closed. */
    public static native void modelClose(long model);

    /** {@code [layers, embedding, heads, head size, vocabulary]}. */
    public static native int[] modelDims(long model);

    /** A one-line description (dimensions, kernel set, tokenizer, file). */
    public static native String modelDescribe(long model);

    /** Token ids of {@code text} (the model file must have a tokenizer). */
    public static native int[] modelTokenize(long model, String text);

    /** Text of {@code tokens} (U+FFFD for invalid UTF-8). */
    public static native String modelDetokenize(long model, int[] tokens);

    /** A new session at the zero state; returns a session handle. */
    public static native long sessionNew(long model);

    /** An independent copy of the session; returns a new session handle. */
    public static native long sessionFork(long session);

    /** Releases the session (cancelling a call running on it). Throws if already closed. */
    public static native void sessionClose(long session);

    /** Stops the running (or the next) prefill or generation. Any thread; never blocks. */
    public static native void sessionCancel(long session);

    /** Withdraws a cancellation that no operation has consumed yet. */
    public static native void sessionClearCancel(long session);

    /** Back to the zero state. */
    public static native void sessionReset(long session);

    /** Tokens fed since creation or reset. */
    public static native long sessionPosition(long session);

    /** Feeds {@code text}. */
    public static native void sessionPrefill(long session, String text);

    /** Feeds token ids. */
    public static native void sessionPrefillTokens(long session, int[] tokens);

    /**
     * Generates on the calling thread, calling {@code callback} (may be null) on it with each
     * piece of text. {@code endOfText} is an {@link EndOfText} ordinal. Returns
     * {@code [stop code, tokens, detail]} (see {@link GenerateResult}).
     */
    public static native int[] sessionGenerate(
            long session,
            double temperature,
            double topP,
            int topK,
            double presencePenalty,
            double frequencyPenalty,
            double penaltyDecay,
            int maxTokens,
            boolean hasSeed,
            long seed,
            String[] stopStrings,
            int endOfText,
            TokenCallback callback);

    /** Saves the session to {@code path} (atomically: temporary file, then rename). */
    public static native void sessionSaveState(long session, String path) throws IOException;

    /** Restores a saved session from {@code path}; unchanged on error. */
    public static native void sessionLoadState(long session, String path) throws IOException;
}
