package org.rwkv7.sample

import android.app.Activity
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView
import java.io.File
import java.io.IOException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.MainScope
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.rwkv7.GenerateParams
import org.rwkv7.GenerateResult
import org.rwkv7.RwkvException
import org.rwkv7.RwkvModel
import org.rwkv7.RwkvSession

/**
 * A minimal chat screen on the rwkv7 Kotlin API (source only: it is not built in this
 * repository, see ../README.md). Copy a GGUF model to the app's external files folder first:
 *
 *     adb push model.gguf /sdcard/Android/data/org.rwkv7.sample/files/model.gguf
 *
 * The model is memory-mapped, so it must be a plain file (not a compressed APK asset).
 */
class MainActivity : Activity(), CoroutineScope by MainScope() {
    private var model: RwkvModel? = null
    private var session: RwkvSession? = null
    private var reply: Job? = null
    /** Whether the last reply ended without its "\n\n" (stopped, or out of tokens). */
    private var turnOpen = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val input = EditText(this).apply { hint = "Say something" }
        val send = Button(this).apply { text = "Send" }
        val stop = Button(this).apply { text = "Stop" }
        val output = TextView(this).apply { setTextIsSelectable(true) }
        setContentView(
            LinearLayout(this).apply {
                orientation = LinearLayout.VERTICAL
                addView(input)
                addView(LinearLayout(context).apply { addView(send); addView(stop) })
                addView(ScrollView(context).apply { addView(output) })
            },
        )

        val file = File(getExternalFilesDir(null), "model.gguf")
        launch {
            try {
                // Loading validates the file; keep it off the main thread.
                val m = withContext(Dispatchers.IO) { RwkvModel.load(file.path) }
                model = m
                session = m.newSession() // native work runs on Dispatchers.Default
                output.text = m.describe() + "\n\n"
            } catch (e: IOException) {
                output.text = "Copy a model to ${file.path} first (${e.message})"
            } catch (e: RwkvException) {
                output.text = "Not a usable model: ${e.message}"
            }
        }

        send.setOnClickListener {
            val s = session ?: return@setOnClickListener
            if (reply?.isActive == true) return@setOnClickListener
            val text = input.text.toString().trim()
            input.text.clear()
            output.append("User: $text\n\nAssistant:")
            reply = launch {
                try {
                    // The session keeps the conversation: only the new turn is fed.
                    s.prefill((if (turnOpen) "\n\n" else "") + "User: $text\n\nAssistant:")
                    turnOpen = true
                    val params = GenerateParams(topP = 0.3, maxTokens = 500, stopStrings = listOf("\n\n"))
                    // onToken runs on the session's background thread: post each piece to the UI.
                    // (Alternatively: s.generateFlow(params).collect { output.append(it) }, which
                    // delivers the pieces here, on the main thread.)
                    val result = s.generate(params) { piece -> runOnUiThread { output.append(piece) } }
                    // Stopping at "\n\n" has fed it, which ends the turn; otherwise the next
                    // prompt starts with it.
                    turnOpen = result.stopReason != GenerateResult.StopReason.STOP_STRING
                } catch (e: RwkvException) {
                    output.append("\n[error: ${e.message}]")
                }
                output.append("\n\n")
            }
        }

        // Cancelling the coroutine cancels the native generation at the next token.
        stop.setOnClickListener { reply?.cancel() }
    }

    override fun onDestroy() {
        cancel() // the coroutines of this screen, and with them any running generation
        // close() may be called while a generation is still finishing on its thread: that call
        // is cancelled and the native memory is freed when it returns.
        session?.close()
        model?.close()
        super.onDestroy()
    }
}
