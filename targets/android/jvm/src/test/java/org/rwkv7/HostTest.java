package org.rwkv7;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Host tests of the JNI layer through the plain-Java API, run by
 * {@code targets/android/test-host.sh} on the host JVM with {@code -Xcheck:jni}.
 *
 * <p>Arguments: {@code --model M.gguf} (with a tokenizer), {@code --corrupt C.gguf},
 * {@code --prompt TEXT}, {@code --tokens N}, {@code --expected FILE} (the stdout of
 * {@code rwkv7 generate -m M -p TEXT -n N --temp 0}), {@code --scratch DIR}. The last line is
 * {@code N passed, M failed}; the exit status is 1 if anything failed.
 */
public final class HostTest {
    private static int passed;
    private static int failed;

    private static String modelPath;
    private static String corruptPath;
    private static String prompt;
    private static int tokens;
    private static String expected;
    private static Path scratch;

    interface Body {
        void run() throws Exception;
    }

    /** Thrown by a token callback, to check that it propagates unchanged. */
    static final class CallbackFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CallbackFailure(String message) {
            super(message);
        }
    }

    static void test(String name, Body body) {
        try {
            body.run();
            passed++;
            System.out.println("PASS " + name);
        } catch (Throwable t) {
            failed++;
            System.out.println("FAIL " + name + ": " + t);
            t.printStackTrace(System.out);
        }
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            throw new AssertionError(message);
        }
    }

    static <T extends Throwable> T expectThrows(Class<T> type, Body body) throws Exception {
        try {
            body.run();
        } catch (Throwable t) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
            throw new AssertionError("expected " + type.getName() + ", got " + t, t);
        }
        throw new AssertionError("expected " + type.getName() + ", nothing was thrown");
    }

    /** The options `rwkv7 generate --temp 0` uses: greedy over the default penalties. */
    static GenerateOptions cliGreedy(int maxTokens) {
        GenerateOptions o = new GenerateOptions();
        o.temperature = 0.0;
        o.maxTokens = maxTokens;
        return o;
    }

    /** Sampling with the default parameters, continuing the session's random stream. */
    static GenerateOptions sampled(int maxTokens) {
        GenerateOptions o = new GenerateOptions();
        o.maxTokens = maxTokens;
        o.endOfText = EndOfText.BAN;
        return o;
    }

    static String generate(NativeSession s, GenerateOptions o) {
        StringBuilder out = new StringBuilder();
        s.generate(o, piece -> {
            out.append(piece);
            return true;
        });
        return out.toString();
    }

    /**
     * The CLI flushes the bytes of a character left unfinished by the last token as U+FFFD;
     * a session keeps them for its next call instead. So the CLI's text is ours plus at most
     * a few U+FFFD.
     */
    static void checkSameAsCli(String actual, String what) {
        String rest = expected.startsWith(actual) ? expected.substring(actual.length()) : null;
        boolean same = rest != null && rest.length() <= 4 && rest.chars().allMatch(c -> c == 0xFFFD);
        check(same, what + ": JNI text differs from the CLI's\n  jni: " + escape(actual) + "\n  cli: " + escape(expected));
    }

    static String escape(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '\n') {
                b.append("\\n");
            } else if (c < 0x20 || c == 0x7f) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--model": modelPath = args[i + 1]; break;
                case "--corrupt": corruptPath = args[i + 1]; break;
                case "--prompt": prompt = args[i + 1]; break;
                case "--tokens": tokens = Integer.parseInt(args[i + 1]); break;
                case "--expected":
                    expected = new String(Files.readAllBytes(Paths.get(args[i + 1])), StandardCharsets.UTF_8);
                    break;
                case "--scratch": scratch = Paths.get(args[i + 1]); break;
                default: throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (modelPath == null || corruptPath == null || prompt == null || expected == null || scratch == null || tokens <= 0) {
            System.err.println("usage: HostTest --model M --corrupt C --prompt P --tokens N --expected F --scratch DIR");
            System.exit(2);
        }
        Files.createDirectories(scratch);
        System.out.println("native library " + RwkvNative.nativeVersion());

        try (NativeModel model = NativeModel.load(modelPath)) {
            run(model);
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    static void run(NativeModel model) throws Exception {
        test("load: the model maps and describes itself", () -> {
            String d = model.describe();
            check(d.contains("layers") && d.contains("tokenizer yes"), d);
            check(model.vocabSize() >= 257 && model.layers() > 0 && model.embedding() > 0, d);
            System.out.println("  " + d);
        });

        test("tokenize/detokenize round-trip", () -> {
            // ASCII, a NUL, accents, CJK and a character outside the BMP (a surrogate pair in
            // Java, four bytes in UTF-8, modified UTF-8 through JNI).
            String text = "Hello, world!\nIt is a truth.\u0000 caf\u00e9 \u4f60\u597d \ud83d\ude00";
            int[] ids = model.tokenize(text);
            check(ids.length > 0, "no tokens");
            check(model.detokenize(ids).equals(text), "round trip");
            expectThrows(IllegalArgumentException.class, () -> model.detokenize(new int[] {1, -1}));
            expectThrows(IllegalArgumentException.class, () -> model.detokenize(new int[] {Integer.MAX_VALUE}));
            expectThrows(NullPointerException.class, () -> model.tokenize(null));
        });

        test("generate (greedy) equals `rwkv7 generate --temp 0`, callback on the calling thread", () -> {
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                Thread caller = Thread.currentThread();
                AtomicInteger otherThread = new AtomicInteger();
                StringBuilder out = new StringBuilder();
                GenerateResult r = s.generate(cliGreedy(tokens), piece -> {
                    if (Thread.currentThread() != caller) {
                        otherThread.incrementAndGet();
                    }
                    out.append(piece);
                    return true;
                });
                check(otherThread.get() == 0, "callback ran on another thread");
                check(r.getTokens() > 0 && r.getTokens() <= tokens, r.toString());
                check(out.length() > 0, "no text");
                checkSameAsCli(out.toString(), "greedy");
                check(s.position() == model.tokenize(prompt).length + r.getTokens(), "position " + s.position());
            }
        });

        test("two sessions generate concurrently on two threads, each as the CLI does", () -> {
            List<Thread> threads = new ArrayList<>();
            List<String> results = new ArrayList<>();
            AtomicReference<Throwable> error = new AtomicReference<>();
            for (int t = 0; t < 2; t++) {
                Thread th = new Thread(() -> {
                    try (NativeSession s = model.newSession()) {
                        s.prefill(prompt);
                        String text = generate(s, cliGreedy(tokens));
                        synchronized (results) {
                            results.add(text);
                        }
                    } catch (Throwable e) {
                        error.set(e);
                    }
                });
                threads.add(th);
                th.start();
            }
            for (Thread th : threads) {
                th.join();
            }
            if (error.get() != null) {
                throw new AssertionError(error.get());
            }
            for (String text : results) {
                checkSameAsCli(text, "concurrent greedy");
            }
        });

        test("stop string: text before it, STOP_STRING with its index", () -> {
            String full;
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                full = generate(s, cliGreedy(tokens));
            }
            int at = Math.max(1, full.length() / 2);
            check(full.length() >= at + 2, "too little text for a stop string: " + escape(full));
            String stop = full.substring(at, at + 2);
            int first = full.indexOf(stop);
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                GenerateOptions o = cliGreedy(tokens);
                o.stopStrings = new String[] {"never appears \u0001", stop};
                StringBuilder out = new StringBuilder();
                GenerateResult r = s.generate(o, piece -> {
                    out.append(piece);
                    return true;
                });
                check(r.getStopReason() == GenerateResult.StopReason.STOP_STRING && r.getStopStringIndex() == 1, r.toString());
                check(out.toString().equals(full.substring(0, first)), escape(out.toString()) + " vs " + escape(full.substring(0, first)));
            }
        });

        test("callback returning false stops (CANCELLED)", () -> {
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                AtomicInteger pieces = new AtomicInteger();
                GenerateOptions o = sampled(1000);
                GenerateResult r = s.generate(o, piece -> pieces.incrementAndGet() < 3);
                check(r.getStopReason() == GenerateResult.StopReason.CANCELLED, r.toString());
                check(pieces.get() == 3 && r.getTokens() < 1000, r + ", pieces " + pieces.get());
            }
        });

        test("cancel() from another thread stops generation mid-way", () -> {
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                CountDownLatch started = new CountDownLatch(1);
                CountDownLatch cancelled = new CountDownLatch(1);
                AtomicInteger pieces = new AtomicInteger();
                Thread canceller = new Thread(() -> {
                    try {
                        started.await();
                        s.cancel();
                        cancelled.countDown();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
                canceller.start();
                GenerateResult r = s.generate(sampled(100_000), piece -> {
                    if (pieces.incrementAndGet() == 3) {
                        started.countDown();
                        try {
                            check(cancelled.await(30, TimeUnit.SECONDS), "canceller did not run");
                        } catch (InterruptedException e) {
                            throw new RuntimeException(e);
                        }
                    }
                    return true;
                });
                canceller.join();
                check(r.getStopReason() == GenerateResult.StopReason.CANCELLED, r.toString());
                check(r.getTokens() < 100_000 && pieces.get() >= 3, r.toString());
                // The request was consumed: the next call runs normally.
                GenerateResult again = s.generate(sampled(4), null);
                check(again.getStopReason() == GenerateResult.StopReason.MAX_TOKENS && again.getTokens() == 4, again.toString());
            }
        });

        test("cancel() before prefill: CancellationException, consumed; clearCancel() withdraws", () -> {
            try (NativeSession s = model.newSession()) {
                s.cancel();
                expectThrows(CancellationException.class, () -> s.prefill(prompt));
                s.prefill(prompt);
                s.cancel();
                s.clearCancel();
                GenerateResult r = s.generate(sampled(3), null);
                check(r.getStopReason() == GenerateResult.StopReason.MAX_TOKENS, r.toString());
            }
        });

        test("saveState/loadState: continuation after load equals continuation without save", () -> {
            String file = scratch.resolve("java.state").toString();
            String direct;
            long position;
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                s.generate(sampled(5), null); // penalties and random stream in use
                s.saveState(file);
                direct = generate(s, sampled(24));
                position = s.position();
            }
            try (NativeSession t = model.newSession()) {
                t.loadState(file);
                String restored = generate(t, sampled(24));
                check(restored.equals(direct), escape(restored) + " vs " + escape(direct));
                check(t.position() == position, "position " + t.position() + " vs " + position);
            }
            check(!direct.isEmpty(), "no text");
        });

        test("fork continues like the original", () -> {
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                try (NativeSession f = s.fork()) {
                    String a = generate(s, sampled(16));
                    String b = generate(f, sampled(16));
                    check(a.equals(b), escape(a) + " vs " + escape(b));
                }
            }
        });

        test("state files: missing -> FileNotFoundException, corrupt -> RwkvException, session unchanged", () -> {
            Path bad = scratch.resolve("corrupt.state");
            Files.write(bad, "RWKVSTATE but not really".getBytes(StandardCharsets.UTF_8));
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                long before = s.position();
                FileNotFoundException nf = expectThrows(FileNotFoundException.class,
                        () -> s.loadState(scratch.resolve("missing.state").toString()));
                check(nf.getMessage().contains("missing.state"), nf.getMessage());
                RwkvException re = expectThrows(RwkvException.class, () -> s.loadState(bad.toString()));
                check(re.getMessage().contains("corrupt.state"), re.getMessage());
                expectThrows(IOException.class, () -> s.saveState(scratch.resolve("no/such/dir/x.state").toString()));
                check(s.position() == before, "session changed");
            }
        });

        test("a bad model path throws FileNotFoundException naming it", () -> {
            FileNotFoundException e = expectThrows(FileNotFoundException.class,
                    () -> NativeModel.load(scratch.resolve("nope.gguf").toString()));
            check(e.getMessage().contains("nope.gguf"), e.getMessage());
            expectThrows(IOException.class, () -> NativeModel.load(scratch.toString())); // a directory
            expectThrows(IllegalArgumentException.class, () -> NativeModel.load(""));
            expectThrows(NullPointerException.class, () -> NativeModel.load(null));
        });

        test("a corrupt model throws RwkvException naming it", () -> {
            RwkvException e = expectThrows(RwkvException.class, () -> NativeModel.load(corruptPath));
            check(e.getMessage().contains(Paths.get(corruptPath).getFileName().toString()), e.getMessage());
        });

        test("double close and use after close throw IllegalStateException (model and session)", () -> {
            NativeModel m = NativeModel.load(modelPath);
            NativeSession s = m.newSession();
            m.close();
            IllegalStateException e = expectThrows(IllegalStateException.class, m::close);
            check(e.getMessage().contains("RwkvModel is closed"), e.getMessage());
            expectThrows(IllegalStateException.class, () -> m.tokenize("x"));
            expectThrows(IllegalStateException.class, m::newSession);
            // The session keeps the mapping alive after the model handle is closed.
            s.prefill(prompt);
            check(s.generate(sampled(3), null).getTokens() == 3, "session after model close");
            s.close();
            IllegalStateException e2 = expectThrows(IllegalStateException.class, s::close);
            check(e2.getMessage().contains("RwkvSession is closed"), e2.getMessage());
            expectThrows(IllegalStateException.class, () -> s.prefill("x"));
            expectThrows(IllegalStateException.class, () -> s.generate(sampled(3), null));
            expectThrows(IllegalStateException.class, s::cancel);
            expectThrows(IllegalStateException.class, s::position);
            expectThrows(IllegalStateException.class, () -> s.saveState(scratch.resolve("x.state").toString()));
            // Forged and wrong-kind handles are table misses, not pointers.
            expectThrows(IllegalStateException.class, () -> RwkvNative.sessionPosition(0));
            expectThrows(IllegalStateException.class, () -> RwkvNative.sessionPosition(0x7fff_ffff_ffffL));
            try (NativeModel m2 = NativeModel.load(modelPath)) {
                expectThrows(IllegalStateException.class, () -> RwkvNative.sessionPrefill(modelHandle(m2), "x"));
            }
        });

        test("close() from another thread during generate: the call ends CANCELLED, memory freed after", () -> {
            NativeSession s = model.newSession();
            s.prefill(prompt);
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch closed = new CountDownLatch(1);
            Thread closer = new Thread(() -> {
                try {
                    started.await();
                    s.close();
                    closed.countDown();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            closer.start();
            AtomicInteger pieces = new AtomicInteger();
            GenerateResult r = s.generate(sampled(100_000), piece -> {
                if (pieces.incrementAndGet() == 2) {
                    started.countDown();
                    try {
                        check(closed.await(30, TimeUnit.SECONDS), "closer did not run");
                    } catch (InterruptedException e) {
                        throw new RuntimeException(e);
                    }
                }
                return true;
            });
            closer.join();
            check(r.getStopReason() == GenerateResult.StopReason.CANCELLED, r.toString());
            expectThrows(IllegalStateException.class, s::position);
        });

        test("an exception thrown by the callback propagates unchanged; the session stays usable", () -> {
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                CallbackFailure thrown = new CallbackFailure("from the callback");
                CallbackFailure caught = expectThrows(CallbackFailure.class, () -> s.generate(sampled(50), piece -> {
                    throw thrown;
                }));
                check(caught == thrown, "a different exception: " + caught);
                check(s.generate(sampled(3), null).getTokens() == 3, "session unusable after callback exception");
            }
        });

        test("re-entrant call from the callback: IllegalStateException (busy), no deadlock", () -> {
            try (NativeSession s = model.newSession()) {
                s.prefill(prompt);
                AtomicReference<Throwable> inner = new AtomicReference<>();
                s.generate(sampled(50), piece -> {
                    try {
                        s.prefill("x");
                    } catch (Throwable t) {
                        inner.set(t);
                    }
                    return false;
                });
                check(inner.get() instanceof IllegalStateException && inner.get().getMessage().contains("busy"),
                        "inner call: " + inner.get());
            }
        });

        test("misuse: generate before prefill, bad parameters, null arguments", () -> {
            try (NativeSession s = model.newSession()) {
                IllegalStateException e = expectThrows(IllegalStateException.class, () -> s.generate(sampled(3), null));
                check(e.getMessage().contains("feed a prompt"), e.getMessage());
                s.prefill(prompt);
                GenerateOptions o = sampled(3);
                o.topP = 2.0;
                IllegalArgumentException iae = expectThrows(IllegalArgumentException.class, () -> s.generate(o, null));
                check(iae.getMessage().contains("topP"), iae.getMessage());
                GenerateOptions o2 = sampled(-1);
                expectThrows(IllegalArgumentException.class, () -> s.generate(o2, null));
                GenerateOptions o3 = sampled(3);
                o3.stopStrings = new String[] {""};
                expectThrows(IllegalArgumentException.class, () -> s.generate(o3, null));
                GenerateOptions o4 = sampled(3);
                o4.stopStrings = new String[] {null};
                expectThrows(NullPointerException.class, () -> s.generate(o4, null));
                expectThrows(NullPointerException.class, () -> s.prefill(null));
                expectThrows(IllegalArgumentException.class, () -> s.prefillTokens(new int[] {1_000_000}));
                check(s.generate(sampled(3), null).getTokens() == 3, "session after misuse");
            }
        });

        test("a Rust panic becomes RwkvException and the VM carries on", () -> {
            RwkvException e = expectThrows(RwkvException.class, () -> RwkvNative.panicForTest("boom from the test"));
            check(e.getMessage().contains("panic") && e.getMessage().contains("boom from the test"), e.getMessage());
            check(!RwkvNative.nativeVersion().isEmpty(), "version after panic");
        });
    }

    /** The handle inside a model (to pass it where a session handle belongs). */
    static long modelHandle(NativeModel m) throws Exception {
        java.lang.reflect.Field f = NativeModel.class.getDeclaredField("handle");
        f.setAccessible(true);
        return f.getLong(m);
    }
}
