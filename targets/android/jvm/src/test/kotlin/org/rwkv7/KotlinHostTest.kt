package org.rwkv7

import java.io.File
import java.io.FileNotFoundException
import java.util.concurrent.atomic.AtomicInteger
import kotlin.system.exitProcess
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/**
 * Host tests of the Kotlin API (coroutines, Flow), run by `targets/android/test-host.sh` with
 * `-Xcheck:jni` when `kotlinc` is available. Same arguments as `HostTest`; the last line is
 * `N passed, M failed`.
 */
private var passed = 0
private var failed = 0

private fun test(name: String, body: suspend CoroutineScope.() -> Unit) {
    try {
        runBlocking { withTimeout(120_000) { body() } }
        passed++
        println("PASS $name")
    } catch (t: Throwable) {
        failed++
        println("FAIL $name: $t")
        t.printStackTrace(System.out)
    }
}

private fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

private inline fun <reified T : Throwable> expectThrows(body: () -> Unit): T {
    try {
        body()
    } catch (t: Throwable) {
        if (t is T) return t
        throw AssertionError("expected ${T::class.java.name}, got $t", t)
    }
    throw AssertionError("expected ${T::class.java.name}, nothing was thrown")
}

/** `rwkv7 generate --temp 0`: greedy over the default penalties. */
private fun cliGreedy(n: Int) = GenerateParams(temperature = 0.0, maxTokens = n)

private fun sampled(n: Int) = GenerateParams(maxTokens = n, endOfText = EndOfText.BAN)

fun main(args: Array<String>) {
    val a = args.toList().chunked(2).associate { it[0] to it[1] }
    val modelPath = a.getValue("--model")
    val corrupt = a.getValue("--corrupt")
    val prompt = a.getValue("--prompt")
    val tokens = a.getValue("--tokens").toInt()
    val expected = File(a.getValue("--expected")).readText(Charsets.UTF_8)
    val scratch = File(a.getValue("--scratch")).apply { mkdirs() }

    /** See HostTest.checkSameAsCli: the CLI flushes an unfinished character as U+FFFD. */
    fun checkSameAsCli(actual: String, what: String) {
        val rest = if (expected.startsWith(actual)) expected.substring(actual.length) else null
        check(rest != null && rest.length <= 4 && rest.all { it == '\uFFFD' }) {
            "$what: Kotlin text differs from the CLI's\n  kotlin: ${actual.replace("\n", "\\n")}\n  cli:    ${expected.replace("\n", "\\n")}"
        }
    }

    RwkvModel.load(modelPath).use { model ->
        test("load, tokenize, detokenize") {
            check(model.vocabSize >= 257) { model.describe() }
            check(model.detokenize(model.tokenize("Hello, world!")) == "Hello, world!") { "round trip" }
        }

        test("suspend generate (greedy) equals the CLI; onToken runs on a background thread") {
            model.newSession().use { s ->
                s.prefill(prompt)
                val caller = Thread.currentThread()
                val threads = mutableSetOf<Thread>()
                val out = StringBuilder()
                val r = s.generate(cliGreedy(tokens)) { piece ->
                    threads += Thread.currentThread()
                    out.append(piece)
                }
                check(caller !in threads && threads.isNotEmpty()) { "onToken ran on the caller's thread" }
                check(r.tokens in 1..tokens) { r.toString() }
                checkSameAsCli(out.toString(), "suspend generate")
            }
        }

        test("generateFlow collects the same text as the CLI, in the collector's context") {
            model.newSession().use { s ->
                s.prefill(prompt)
                val collector = Thread.currentThread()
                val threads = mutableSetOf<Thread>()
                val pieces = mutableListOf<String>()
                s.generateFlow(cliGreedy(tokens)).collect {
                    threads += Thread.currentThread()
                    pieces += it
                }
                check(threads == setOf(collector)) { "pieces delivered on $threads, collector $collector" }
                checkSameAsCli(pieces.joinToString(""), "generateFlow")
            }
        }

        test("a flow collected partly (take) stops the native generation; the session is free again") {
            model.newSession().use { s ->
                s.prefill(prompt)
                val start = s.position
                val first = s.generateFlow(sampled(100_000)).take(3).toList()
                check(first.size == 3) { "got $first" }
                // Generation stopped (the session is not busy) well before 100000 tokens.
                check(s.position - start < 1_000) { "ran on to position ${s.position}" }
                // No cancellation is left pending for the next call.
                val r = s.generate(sampled(5)) {}
                check(r.tokens == 5 && r.stopReason == GenerateResult.StopReason.MAX_TOKENS) { r.toString() }
            }
        }

        test("cancelling the coroutine cancels the native generation") {
            model.newSession().use { s ->
                s.prefill(prompt)
                val firstPiece = CompletableDeferred<Unit>()
                val count = AtomicInteger()
                val job = launch(Dispatchers.Default) {
                    s.generate(sampled(100_000)) {
                        count.incrementAndGet()
                        firstPiece.complete(Unit)
                    }
                }
                firstPiece.await()
                job.cancelAndJoin()
                check(job.isCancelled) { "job not cancelled" }
                val after = count.get()
                check(after < 100_000) { "ran to the end" }
                val r = s.generate(sampled(4)) {}
                check(r.tokens == 4) { "session after cancel: $r" }
            }
        }

        test("session.cancel() from another coroutine stops generate (CANCELLED)") {
            model.newSession().use { s ->
                s.prefill(prompt)
                val started = CompletableDeferred<Unit>()
                val gen = async(Dispatchers.Default) {
                    s.generate(sampled(100_000)) { started.complete(Unit) }
                }
                started.await()
                s.cancel()
                val r = gen.await()
                check(r.stopReason == GenerateResult.StopReason.CANCELLED) { r.toString() }
            }
        }

        test("saveState/loadState: continuation after load equals continuation without save") {
            val file = File(scratch, "kotlin.state").path
            val direct = StringBuilder()
            model.newSession().use { s ->
                s.prefill(prompt)
                s.saveState(file)
                s.generate(sampled(24)) { direct.append(it) }
            }
            val restored = StringBuilder()
            model.newSession().use { t ->
                t.loadState(file)
                t.generate(sampled(24)) { restored.append(it) }
            }
            check(direct.isNotEmpty() && direct.toString() == restored.toString()) { "$direct vs $restored" }
        }

        test("errors: bad path, corrupt model, bad parameters, prefill cancelled") {
            expectThrows<FileNotFoundException> { RwkvModel.load(File(scratch, "nope.gguf").path) }
            expectThrows<RwkvException> { RwkvModel.load(corrupt) }
            expectThrows<IllegalArgumentException> { GenerateParams(topP = 1.5) }
            model.newSession().use { s ->
                expectThrows<IllegalStateException> { s.generate(sampled(3)) {} }
                s.cancel()
                expectThrows<CancellationException> { s.prefill(prompt) }
                s.prefill(prompt)
            }
        }

        test("double close and use after close throw IllegalStateException") {
            val m = RwkvModel.load(modelPath)
            val s = m.newSession()
            m.close()
            expectThrows<IllegalStateException> { m.close() }
            expectThrows<IllegalStateException> { m.tokenize("x") }
            s.close()
            expectThrows<IllegalStateException> { s.close() }
            expectThrows<IllegalStateException> { s.prefill("x") }
            expectThrows<IllegalStateException> { s.cancel() }
        }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
