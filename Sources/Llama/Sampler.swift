#if canImport(Glibc)
import Glibc
#endif
/// How the next token is chosen. `temperature == 0` is greedy (argmax).
/// Order as in vLLM (the paper's engine): temperature, then top-k, then top-p.
public struct SamplingParams: Sendable, Equatable, Hashable {
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float, topK: Int = 20, topP: Float = 0.95, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingParams(temperature: 0, topK: 1, topP: 1)
    /// The paper's reasoning defaults (Qwen3: temperature 0.6, top-p 0.95, top-k 20).
    public static func reasoning(seed: UInt64) -> SamplingParams { .init(temperature: 0.6, topK: 20, topP: 0.95, seed: seed) }

    public var isGreedy: Bool { temperature <= 0 }
}

/// xoshiro256** seeded through SplitMix64: small, fast, and the same stream on every platform,
/// which makes a request's seed reproduce its output.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// A uniform draw keyed by (seed, stream, position) instead of by how many draws came before:
    /// the token at a position gets the same draw however many proposals were tried or rejected on
    /// the way, so a request's seed fixes its tokens whatever the speculation did.
    public static func unit(seed: UInt64, stream: UInt64, position: Int) -> Float {
        var g = SeededGenerator(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) ^ (UInt64(position) &* 0x9E37_79B9_7F4A_7C15))
        return g.unit()
    }
}

/// The next-token distribution after temperature/top-k/top-p: the surviving candidates, most likely
/// first, with probabilities that sum to 1. Greedy is the one-candidate distribution.
public struct TokenDistribution: Sendable, Equatable {
    public let tokens: [Token]
    public let probabilities: [Float]

    public init(tokens: [Token], probabilities: [Float]) {
        precondition(!tokens.isEmpty && tokens.count == probabilities.count)
        self.tokens = tokens
        self.probabilities = probabilities
    }

    public static func certain(_ token: Token) -> TokenDistribution { .init(tokens: [token], probabilities: [1]) }

    public var mostLikely: Token { tokens[0] }

    public func probability(of token: Token) -> Float {
        guard let i = tokens.firstIndex(of: token) else { return 0 }
        return probabilities[i]
    }

    public func sample(using rng: inout SeededGenerator) -> Token { sample(u: rng.unit()) }

    /// The token whose cumulative-probability interval holds `u` ∈ [0, 1).
    ///
    /// Verifying a deterministic proposal x (n-gram or a draft step's token, q = δ(x)) is this draw
    /// followed by "accepted iff the token is x": x is taken with probability p(x), exactly the
    /// speculative-sampling acceptance (Leviathan et al. 2023) for a point-mass proposal, and the
    /// token is distributed as p whether or not x was proposed. With the same `u` for a position
    /// (see `SeededGenerator.unit(seed:stream:position:)`) it is also the token plain decoding draws.
    public func sample(u: Float) -> Token {
        if tokens.count == 1 { return tokens[0] }
        var rest = u
        for (t, p) in zip(tokens, probabilities) {
            if rest < p { return t }
            rest -= p
        }
        return tokens[tokens.count - 1]
    }
}

extension TokenDistribution {
    /// Builds the distribution from a logits row. Greedy costs one pass over the vocabulary; sampling
    /// keeps the top-k in a small sorted buffer (k ≪ vocabulary), so no full sort happens.
    public init(logits: UnsafeBufferPointer<Float>, params: SamplingParams) {
        precondition(!logits.isEmpty)
        if params.isGreedy {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            self = .certain(Token(best))
            return
        }
        let k = params.topK > 0 ? min(params.topK, logits.count) : logits.count
        var topIndex: [Int] = []
        var topLogit: [Float] = []
        topIndex.reserveCapacity(k + 1)
        topLogit.reserveCapacity(k + 1)
        for i in 0..<logits.count {
            let v = logits[i]
            if topLogit.count == k, v <= topLogit[k - 1] { continue }
            var j = topLogit.count
            while j > 0, topLogit[j - 1] < v { j -= 1 }
            topLogit.insert(v, at: j)
            topIndex.insert(i, at: j)
            if topLogit.count > k { topLogit.removeLast(); topIndex.removeLast() }
        }
        let maxLogit = topLogit[0]
        var probs = topLogit.map { expf(($0 - maxLogit) / params.temperature) }
        let sum = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= sum }
        // Smallest prefix whose mass reaches top-p (at least one token).
        var keep = probs.count
        if params.topP < 1 {
            var mass: Float = 0
            for i in probs.indices {
                mass += probs[i]
                if mass >= params.topP { keep = i + 1; break }
            }
        }
        let kept = probs[0..<keep]
        let keptSum = kept.reduce(0, +)
        self.init(tokens: topIndex[0..<keep].map { Token($0) }, probabilities: kept.map { $0 / keptSum })
    }
}

/// A stateful sampler for plain generation: the distribution of each logits row, drawn with the
/// request's seeded generator.
public struct Sampler: Sendable {
    public let params: SamplingParams
    public var rng: SeededGenerator

    public init(_ params: SamplingParams) {
        self.params = params
        rng = SeededGenerator(seed: params.seed)
    }

    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Token {
        TokenDistribution(logits: logits, params: params).sample(using: &rng)
    }
}
