import Testing
import Llama
import Lookahead
import ScriptedEngines

/// The cost-led choices, on scripted models whose passes advance a simulated clock: what a pass of
/// n tokens costs is set per test (2 CPU cores: every token costs nearly a pass; a GPU: nearly free).
@Suite("Adaptive speculation")
struct AdaptiveTests {
    /// Steps whose words repeat `a` so the n-gram lookup keeps proposing what followed the last
    /// `a`, which is never what comes next.
    static let misleading = (0..<12).map { i in "a w\(i) a x\(i) a y\(i) a z\(i) |" } + ["done <eos>"]

    static func adaptive(_ mode: Mode, _ on: Bool) -> SessionConfig {
        var c = SessionConfig(mode: mode)
        c.adaptive = on
        c.proposalTokens = 4
        return c
    }

    @Test func proposalsThatDoNotPayForTheirPlaceAreDropped() throws {
        var s = Scenario(targetSteps: Self.misleading, draftSteps: Self.misleading)
        s.targetCost = { Double($0) }  // every extra token costs a whole pass
        s.config = Self.adaptive(.sd, false)
        let fixed = try s.run()
        s.config = Self.adaptive(.sd, true)
        let adaptive = try s.run()
        #expect(adaptive.text == fixed.text)
        let proposedFixed = fixed.stats.proposed[.ngram] ?? 0, proposedAdaptive = adaptive.stats.proposed[.ngram] ?? 0
        #expect(proposedFixed > 40)
        #expect(proposedAdaptive * 4 < proposedFixed, "adaptive proposed \(proposedAdaptive), fixed \(proposedFixed)")
        #expect(adaptive.seconds < fixed.seconds)
    }

    @Test func proposalsAreKeptWhenExtraTokensAreNearlyFree() throws {
        var s = Scenario(targetSteps: Self.misleading, draftSteps: Self.misleading)
        s.targetCost = { 1 + 0.02 * Double($0) }
        s.config = Self.adaptive(.sd, false)
        let fixed = try s.run()
        s.config = Self.adaptive(.sd, true)
        let adaptive = try s.run()
        #expect(adaptive.text == fixed.text)
        #expect((adaptive.stats.proposed[.ngram] ?? 0) * 2 > (fixed.stats.proposed[.ngram] ?? 0))
    }

    /// Long enough for several governor windows: 30 steps of 8 tokens.
    static func steps(_ tag: String) -> [String] {
        (0..<30).map { i in "\(tag)\(i) one two three four five six |" } + ["done <eos>"]
    }

    /// Costs as measured on 2 CPU cores: a token added to a pass costs half a pass, a draft token
    /// 0.45 of a target token.
    static func cpuTarget(_ n: Int) -> Double { 1 + 0.5 * Double(n - 1) }
    static func cpuDraft(_ n: Int) -> Double { 0.45 * cpuTarget(n) }

    @Test func draftingPausesWhileItCostsMoreThanItSaves() throws {
        var s = Scenario(targetSteps: Self.steps("t"), draftSteps: Self.steps("d"))
        s.targetCost = Self.cpuTarget
        s.draftCost = Self.cpuDraft
        s.config = Self.adaptive(.lookahead, false)
        let fixed = try s.run()
        s.config = Self.adaptive(.lookahead, true)
        let adaptive = try s.run()
        s.config = Self.adaptive(.ar, true)
        let ar = try s.run()
        #expect(adaptive.text == ar.text && fixed.text == ar.text)
        #expect(adaptive.stats.draftPauses >= 1)
        #expect(adaptive.stats.draftPasses * 2 < fixed.stats.draftPasses)
        // The first window and the probes cost what they cost; the rest is plain decoding.
        #expect(adaptive.stats.draftedTokens * 4 < adaptive.tokens.count)
        #expect(adaptive.seconds < 0.6 * fixed.seconds, "adaptive \(adaptive.seconds) s, fixed \(fixed.seconds) s")
    }

    /// The machine's costs do not change between requests: after sessions that lost to plain
    /// decoding, the next one starts with its draft paused instead of paying for a first window.
    @Test func aLosingLedgerStartsTheNextSessionPaused() throws {
        var s = Scenario(targetSteps: Self.steps("t"), draftSteps: Self.steps("d"))
        s.targetCost = Self.cpuTarget
        s.draftCost = Self.cpuDraft
        s.config = Self.adaptive(.lookahead, true)
        let runs = try s.runSessions(2)
        s.config = Self.adaptive(.ar, true)
        let ar = try s.run()
        #expect(runs[0].text == ar.text && runs[1].text == ar.text)
        #expect(runs[1].stats.draftedTokens < runs[0].stats.draftedTokens)
        #expect(runs[1].seconds < 1.15 * ar.seconds, "second session \(runs[1].seconds) s, ar \(ar.seconds) s")
    }

    @Test func draftingContinuesWhileItPays() throws {
        var s = Scenario(targetSteps: Self.steps("t"), draftSteps: Self.steps("t"))
        s.targetCost = { _ in 1 }
        s.draftCost = { _ in 0.1 }
        s.config = Self.adaptive(.lookahead, true)
        let adaptive = try s.run()
        s.config = Self.adaptive(.ar, true)
        let ar = try s.run()
        #expect(adaptive.text == ar.text)
        #expect(adaptive.stats.draftPauses == 0)
        #expect(adaptive.stats.acceptedDraftSteps >= 20)
        #expect(adaptive.seconds < ar.seconds)
    }

    /// γ is capped at ⌈1/c⌉ for the measured c: with a draft token at half a target token's cost,
    /// no more than 2 branches are ever open beside the root.
    @Test func depthIsCappedByTheMeasuredCostRatio() throws {
        var s = Scenario(targetSteps: Self.steps("t"), draftSteps: Self.steps("t"))
        s.targetCost = { _ in 1 }
        s.draftCost = { _ in 0.5 }
        s.config = Self.adaptive(.lookahead, true)
        s.config.gamma = 6
        let o = try s.run()
        let late = o.target.passes.dropFirst(10).map { Set($0.flatMap(\.sequences)).count }
        #expect((late.max() ?? 0) <= 3)
        #expect(o.stats.acceptedDraftSteps > 0)
    }

    /// Sampling keyed by position: with a seed, speculation changes only speed, never the tokens —
    /// `sd` and exact-verified `lookahead` write what `ar` draws for that seed.
    @Test func sampledSpeculationWritesWhatPlainDecodingDraws() throws {
        var s = Scenario(targetSteps: Self.misleading, draftSteps: Self.misleading)
        let words = s.words, steps = Self.misleading.map { words.tokens($0) }
        let um = words.id("um"), so = words.id("so")
        s.targetDistribution = { _, step, offset in
            guard step < steps.count, offset < steps[step].count, steps[step][offset] != WordText.eos else { return nil }
            return TokenDistribution(tokens: [steps[step][offset], um, so], probabilities: [0.6, 0.25, 0.15])
        }
        var proposed = 0, taken = 0
        for seed in UInt64(0)..<12 {
            var texts: [Mode: String] = [:]
            for mode in [Mode.ar, .sd, .lookahead, .lookaheadSD] {
                s.config = Self.adaptive(mode, false)
                s.config.sampling = SamplingParams(temperature: 1, topK: 0, topP: 1, seed: seed)
                let o = try s.run()
                texts[mode] = o.text
                proposed += o.stats.proposed.values.reduce(0, +)
                taken += o.stats.acceptedProposals.values.reduce(0, +)
            }
            #expect(Set(texts.values).count == 1, "seed \(seed): \(texts)")
        }
        #expect(taken > 0 && taken < proposed, "proposals must be both taken and refused for the test to mean anything")
    }
}
