package org.rwkv7

import java.io.IOException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers

/**
 * An RWKV-7 model file (GGUF), memory-mapped, not copied: loading is fast and the weights
 * stay in the page cache, shared with other processes.
 *
 * Thread-safe; sessions on one model may run on different threads. [close] releases the
 * handle; the mapping lives until the last session on the model is closed too. Closing twice,
 * or using the model after closing it, throws [IllegalStateException].
 *
 * ```kotlin
 * RwkvModel.load(path).use { model ->
 *     model.newSession().use { session ->
 *         session.prefill("User: hi\n\nAssistant:")
 *         session.generateFlow(GenerateParams(stopStrings = listOf("\n\n"))).collect { print(it) }
 *     }
 * }
 * ```
 */
class RwkvModel private constructor(private val native: NativeModel) : AutoCloseable {
    companion object {
        /**
         * Maps and validates the model at [path]. Blocks for the validation (milliseconds);
         * call it off the main thread for large files.
         *
         * @throws java.io.FileNotFoundException if it does not exist
         * @throws IOException if it cannot be read or mapped
         * @throws RwkvException if it is not a valid RWKV-7 model
         */
        @JvmStatic
        @Throws(IOException::class)
        fun load(path: String): RwkvModel = RwkvModel(NativeModel.load(path))
    }

    /** Vocabulary size. */
    val vocabSize: Int get() = native.vocabSize()

    /** A one-line description (dimensions, kernel set, tokenizer, file). */
    fun describe(): String = native.describe()

    /**
     * A new session at the zero state. Its blocking native work runs on [dispatcher] (default
     * [Dispatchers.Default]); `onToken` callbacks run there too.
     */
    fun newSession(dispatcher: CoroutineDispatcher = Dispatchers.Default): RwkvSession =
        RwkvSession(native.newSession(), dispatcher)

    /** Token ids of [text] ([RwkvException] if the file has no tokenizer). */
    fun tokenize(text: String): IntArray = native.tokenize(text)

    /** Text of [tokens] (U+FFFD for invalid UTF-8). */
    fun detokenize(tokens: IntArray): String = native.detokenize(tokens)

    /** Releases the model handle ([IllegalStateException] if already closed). */
    override fun close() = native.close()
}
