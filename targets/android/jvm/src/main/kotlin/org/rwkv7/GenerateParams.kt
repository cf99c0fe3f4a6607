package org.rwkv7

/**
 * Parameters of one [RwkvSession.generate] call: the sampler of the official RWKV pipeline
 * (the defaults are its `PIPELINE_ARGS`), a token budget, a seed and stop strings.
 *
 * @property temperature 0 is greedy.
 * @property topP nucleus mass in [0, 1]; 0 is greedy.
 * @property topK keep only the `topK` most probable tokens; 0 disables.
 * @property presencePenalty penalty for any token already generated.
 * @property frequencyPenalty penalty per (decayed) occurrence of a generated token.
 * @property penaltyDecay decay of the occurrence counts per generated token, in [0, 1].
 * @property maxTokens generate at most this many tokens.
 * @property seed reseed the random generator first; `null` continues the session's stream
 *   (which saved states carry, so a restored session continues identically).
 * @property stopStrings stop when the text contains one of these (not passed to `onToken`).
 * @property endOfText what token 0 (end of text) does.
 */
data class GenerateParams(
    val temperature: Double = 1.0,
    val topP: Double = 0.85,
    val topK: Int = 0,
    val presencePenalty: Double = 0.2,
    val frequencyPenalty: Double = 0.2,
    val penaltyDecay: Double = 0.996,
    val maxTokens: Int = 256,
    val seed: Long? = null,
    val stopStrings: List<String> = emptyList(),
    val endOfText: EndOfText = EndOfText.STOP,
) {
    init {
        require(temperature.isFinite() && temperature >= 0.0) { "temperature must be a finite number >= 0, not $temperature" }
        require(topP in 0.0..1.0) { "topP must be between 0 and 1, not $topP" }
        require(topK >= 0) { "topK must be >= 0, not $topK" }
        require(presencePenalty.isFinite()) { "presencePenalty must be finite, not $presencePenalty" }
        require(frequencyPenalty.isFinite()) { "frequencyPenalty must be finite, not $frequencyPenalty" }
        require(penaltyDecay in 0.0..1.0) { "penaltyDecay must be between 0 and 1, not $penaltyDecay" }
        require(maxTokens >= 0) { "maxTokens must be >= 0, not $maxTokens" }
        require(stopStrings.none { it.isEmpty() }) { "stop strings must not be empty" }
    }

    /** The same parameters for the Java layer. */
    fun toOptions(): GenerateOptions = GenerateOptions().also {
        it.temperature = temperature
        it.topP = topP
        it.topK = topK
        it.presencePenalty = presencePenalty
        it.frequencyPenalty = frequencyPenalty
        it.penaltyDecay = penaltyDecay
        it.maxTokens = maxTokens
        it.seed = seed
        it.stopStrings = stopStrings.toTypedArray()
        it.endOfText = endOfText
    }

    companion object {
        /** Greedy decoding without penalties. */
        @JvmStatic
        fun greedy(maxTokens: Int = 256): GenerateParams =
            GenerateParams(temperature = 0.0, topP = 0.0, presencePenalty = 0.0, frequencyPenalty = 0.0, maxTokens = maxTokens)
    }
}
