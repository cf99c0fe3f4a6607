package org.rwkv7

import java.io.IOException
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.channelFlow
import kotlinx.coroutines.withContext

/**
 * A conversation or document in progress: the recurrent state, the position, the sampler's
 * penalties and random stream.
 *
 * The suspending functions run the blocking native work on the session's dispatcher (chosen
 * in [RwkvModel.newSession]), so they are safe to call from the main thread. Cancelling the
 * calling coroutine cancels the native work (at the next token or prefill chunk) and waits
 * for it to stop. One call at a time: a second call while one is running throws
 * [IllegalStateException]. [cancel] and [close] may be called from any thread.
 */
class RwkvSession internal constructor(
    private val native: NativeSession,
    private val dispatcher: CoroutineDispatcher,
) : AutoCloseable {

    /** Tokens fed since creation or [reset]. */
    val position: Long get() = native.position()

    /** Feeds [text]. */
    suspend fun prefill(text: String): Unit = runNative { native.prefill(text) }

    /** Feeds token ids. */
    suspend fun prefill(tokens: IntArray): Unit = runNative { native.prefillTokens(tokens) }

    /**
     * Generates text, passing each piece (whole characters) to [onToken] **on the session's
     * background dispatcher thread** as it is produced (switch to the main thread yourself to
     * touch views, or use [generateFlow]). Stops at `maxTokens`, end of text, a stop string,
     * [cancel], [close], or when the calling coroutine is cancelled.
     *
     * @throws IllegalStateException if nothing was fed yet, or the session is busy
     * @throws IllegalArgumentException if a parameter is out of range
     */
    suspend fun generate(params: GenerateParams = GenerateParams(), onToken: (String) -> Unit): GenerateResult =
        runNative {
            native.generate(params.toOptions()) { piece ->
                onToken(piece)
                true
            }
        }

    /**
     * The generated text as a cold [Flow] of pieces: collecting it runs one generation on the
     * session's dispatcher; pieces are delivered in the collector's context (e.g. the main
     * thread). Cancelling the collection (or `take(n)`, `first()`, …) stops the native
     * generation. The native side waits (back-pressure) when the collector is slow.
     */
    fun generateFlow(params: GenerateParams = GenerateParams()): Flow<String> = channelFlow {
        runNative {
            native.generate(params.toOptions()) { piece -> trySendBlocking(piece).isSuccess }
        }
    }

    /**
     * Stops the running prefill or generation at the next token or chunk, or, if none is
     * running, the next one. Any thread; never blocks.
     */
    fun cancel() = native.cancel()

    /** Saves the session (state, last logits, penalties, random stream) to [path], atomically. */
    @Throws(IOException::class)
    suspend fun saveState(path: String): Unit = runNative { native.saveState(path) }

    /**
     * Restores a session saved by [saveState]; unchanged on error.
     *
     * @throws IOException if the file cannot be read
     * @throws RwkvException if it is damaged or belongs to another model
     */
    @Throws(IOException::class)
    suspend fun loadState(path: String): Unit = runNative { native.loadState(path) }

    /** An independent copy that continues identically when fed identically. */
    fun fork(): RwkvSession = RwkvSession(native.fork(), dispatcher)

    /** Back to the zero state (no logits, no penalties, position 0). */
    fun reset() = native.reset()

    /**
     * Releases the native memory (after a call still running on another thread, which is
     * cancelled, has returned). [IllegalStateException] if already closed.
     */
    override fun close() = native.close()

    /**
     * Runs blocking native work on [dispatcher]. If the calling coroutine is cancelled while
     * it runs, the native work is cancelled through the session's atomic flag and awaited (so
     * the session is idle when this returns), and the flag is cleared in case the work ended
     * before it saw it.
     */
    private suspend fun <T> runNative(block: () -> T): T = coroutineScope {
        val work = async(dispatcher) { block() }
        try {
            work.await()
        } catch (e: CancellationException) {
            if (!work.isCompleted) {
                runCatching { native.cancel() }
                withContext(NonCancellable) { work.join() }
                runCatching { native.clearCancel() }
            }
            throw e
        }
    }
}
