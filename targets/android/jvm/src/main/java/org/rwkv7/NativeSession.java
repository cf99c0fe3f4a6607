package org.rwkv7;

import java.io.IOException;

/**
 * A conversation or document in progress (recurrent state, position, penalties, random
 * stream): the plain-Java API. Kotlin code uses {@code RwkvSession}, which wraps this class.
 *
 * <p>Every method but {@link #cancel()}, {@link #clearCancel()} and {@link #close()} blocks
 * the calling thread; call them from a background thread. One call at a time: a second call
 * while one is running (from another thread, or from the token callback) throws
 * {@link IllegalStateException}. {@link #cancel()} and {@link #close()} may be called from any
 * thread at any time. Closing twice, or using the session after closing it, throws
 * {@link IllegalStateException}.
 */
public final class NativeSession implements AutoCloseable {
    private final long handle;

    NativeSession(long handle) {
        this.handle = handle;
    }

    /** Feeds {@code text}. A cancellation throws {@link java.util.concurrent.CancellationException}. */
    public void prefill(String text) {
        RwkvNative.sessionPrefill(handle, text);
    }

    /** Feeds token ids. */
    public void prefillTokens(int[] tokens) {
        RwkvNative.sessionPrefillTokens(handle, tokens);
    }

    /**
     * Generates text on the calling thread, passing each piece to {@code onToken} (may be
     * null) on this same thread. Stops at {@code maxTokens}, end of text, a stop string,
     * {@link #cancel()} from another thread, or {@code onToken} returning {@code false}.
     *
     * @throws IllegalStateException if nothing was fed yet (no prompt), or the session is busy
     * @throws IllegalArgumentException if a parameter is out of range
     */
    public GenerateResult generate(GenerateOptions options, TokenCallback onToken) {
        GenerateOptions o = options != null ? options : new GenerateOptions();
        int[] r = RwkvNative.sessionGenerate(
                handle,
                o.temperature,
                o.topP,
                o.topK,
                o.presencePenalty,
                o.frequencyPenalty,
                o.penaltyDecay,
                o.maxTokens,
                o.seed != null,
                o.seed != null ? o.seed : 0L,
                o.stopStrings,
                (o.endOfText != null ? o.endOfText : EndOfText.STOP).ordinal(),
                onToken);
        return GenerateResult.fromNative(r);
    }

    /**
     * Stops the running prefill or generation at the next token or chunk, or, if none is
     * running, the next one. Safe from any thread; never blocks.
     */
    public void cancel() {
        RwkvNative.sessionCancel(handle);
    }

    /** Withdraws a cancellation that no operation has consumed yet. */
    public void clearCancel() {
        RwkvNative.sessionClearCancel(handle);
    }

    /** Saves the session (state, last logits, penalties, random stream) to {@code path}. */
    public void saveState(String path) throws IOException {
        RwkvNative.sessionSaveState(handle, path);
    }

    /**
     * Restores a session saved by {@link #saveState}; unchanged on error.
     *
     * @throws IOException if the file cannot be read
     * @throws RwkvException if it is damaged or belongs to another model
     */
    public void loadState(String path) throws IOException {
        RwkvNative.sessionLoadState(handle, path);
    }

    /** An independent copy that continues identically when fed identically. */
    public NativeSession fork() {
        return new NativeSession(RwkvNative.sessionFork(handle));
    }

    /** Back to the zero state (no logits, no penalties, position 0). */
    public void reset() {
        RwkvNative.sessionReset(handle);
    }

    /** Tokens fed since creation or reset. */
    public long position() {
        return RwkvNative.sessionPosition(handle);
    }

    /**
     * Releases the session's native memory (after a call still running on another thread,
     * which is cancelled, has returned). Throws {@link IllegalStateException} if already closed.
     */
    @Override
    public void close() {
        RwkvNative.sessionClose(handle);
    }
}
