package org.rwkv7;

/** What one {@code generate} call did. */
public final class GenerateResult {
    /** Why generation stopped. The ordinals are the native stop codes. */
    public enum StopReason {
        /** {@code maxTokens} tokens were generated. */
        MAX_TOKENS,
        /** Token 0 (end of text) was sampled. */
        END_OF_TEXT,
        /** A stop token was sampled. */
        STOP_TOKEN,
        /** One of the stop strings appeared ({@link #getStopStringIndex()} says which). */
        STOP_STRING,
        /** {@code cancel()}, {@code close()}, or the callback returning {@code false}. */
        CANCELLED
    }

    private final StopReason stopReason;
    private final int tokens;
    private final int detail;

    GenerateResult(StopReason stopReason, int tokens, int detail) {
        this.stopReason = stopReason;
        this.tokens = tokens;
        this.detail = detail;
    }

    /** Decodes {@code [stop code, tokens, detail]} from {@code RwkvNative.sessionGenerate}. */
    static GenerateResult fromNative(int[] r) {
        StopReason[] reasons = StopReason.values();
        if (r == null || r.length != 3 || r[0] < 0 || r[0] >= reasons.length) {
            throw new RwkvException("native generate returned an unexpected result");
        }
        return new GenerateResult(reasons[r[0]], r[1], r[2]);
    }

    /** Why generation stopped. */
    public StopReason getStopReason() {
        return stopReason;
    }

    /** Tokens generated (and fed to the session). */
    public int getTokens() {
        return tokens;
    }

    /** The index of the stop string found, or -1. */
    public int getStopStringIndex() {
        return stopReason == StopReason.STOP_STRING ? detail : -1;
    }

    /** The stop token sampled, or -1. */
    public int getStopToken() {
        return stopReason == StopReason.STOP_TOKEN ? detail : -1;
    }

    @Override
    public String toString() {
        return "GenerateResult(stopReason=" + stopReason + ", tokens=" + tokens
                + (detail >= 0 ? ", detail=" + detail : "") + ")";
    }
}
