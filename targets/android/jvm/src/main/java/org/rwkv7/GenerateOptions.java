package org.rwkv7;

import java.util.Arrays;

/**
 * Parameters of one {@link NativeSession#generate} call: the sampler of the official RWKV
 * pipeline (defaults are its {@code PIPELINE_ARGS}), a token budget, a seed and stop strings.
 * Kotlin code uses the data class {@code GenerateParams} instead. Ranges are checked by the
 * native side ({@link IllegalArgumentException} naming the field).
 */
public final class GenerateOptions {
    /** Temperature; 0 is greedy. */
    public double temperature = 1.0;
    /** Nucleus (top-p) mass in [0, 1]; 0 is greedy. */
    public double topP = 0.85;
    /** Keep only the {@code topK} most probable tokens; 0 disables. */
    public int topK = 0;
    /** Penalty for any token already generated. */
    public double presencePenalty = 0.2;
    /** Penalty per (decayed) occurrence of a generated token. */
    public double frequencyPenalty = 0.2;
    /** Decay of the occurrence counts per generated token, in [0, 1]. */
    public double penaltyDecay = 0.996;
    /** Generate at most this many tokens. */
    public int maxTokens = 256;
    /** Reseed the random generator first; {@code null} continues the session's stream. */
    public Long seed = null;
    /** Stop when the text contains one of these (not passed to the callback). */
    public String[] stopStrings = new String[0];
    /** What token 0 does. */
    public EndOfText endOfText = EndOfText.STOP;

    /** Greedy decoding without penalties. */
    public static GenerateOptions greedy(int maxTokens) {
        GenerateOptions o = new GenerateOptions();
        o.temperature = 0.0;
        o.topP = 0.0;
        o.presencePenalty = 0.0;
        o.frequencyPenalty = 0.0;
        o.maxTokens = maxTokens;
        return o;
    }

    @Override
    public String toString() {
        return "GenerateOptions(temperature=" + temperature + ", topP=" + topP + ", topK=" + topK
                + ", presencePenalty=" + presencePenalty + ", frequencyPenalty=" + frequencyPenalty
                + ", penaltyDecay=" + penaltyDecay + ", maxTokens=" + maxTokens + ", seed=" + seed
                + ", stopStrings=" + Arrays.toString(stopStrings) + ", endOfText=" + endOfText + ")";
    }
}
