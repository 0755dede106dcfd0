import Testing
import Lookahead

@Suite("Random verifier")
struct RandomVerifierTests {
    static let pairs = Array(repeating: StepPair(target: "3 + 5 = 8", draft: "3 + 5 = 9"), count: 10_000)

    @Test func acceptsAtTheConfiguredRate() {
        let accepted = RandomVerifier(acceptance: 0.6).verify(Self.pairs).filter { $0 }.count
        // 10 000 draws: the standard deviation is 49, so ±250 is five of them.
        #expect(abs(accepted - 6_000) < 250)
    }

    @Test func seededStreamsRepeat() {
        #expect(RandomVerifier(acceptance: 0.5, seed: 7).verify(Self.pairs)
            == RandomVerifier(acceptance: 0.5, seed: 7).verify(Self.pairs))
        #expect(RandomVerifier(acceptance: 0.5, seed: 7).verify(Self.pairs)
            != RandomVerifier(acceptance: 0.5, seed: 8).verify(Self.pairs))
    }

    @Test func endpointsAreExact() {
        #expect(RandomVerifier(acceptance: 0).verify(Self.pairs).allSatisfy { !$0 })
        #expect(RandomVerifier(acceptance: 1).verify(Self.pairs).allSatisfy { $0 })
    }

    @Test func specNamesTheProbability() {
        #expect(RandomVerifier(spec: "random:0.25")?.acceptance == 0.25)
        #expect(RandomVerifier(spec: "random:1")?.acceptance == 1)
        for bad in ["random:", "random:1.5", "random:-0.1", "random:x", "embedding", "random0.5"] {
            #expect(RandomVerifier(spec: bad) == nil, "\(bad)")
        }
    }

    /// Behind the chain, random acceptance is not vetoed by the numeric guard: α stays at P.
    @Test func chainWithoutGuardKeepsTheRate() throws {
        let chain = VerifierChain(semantic: RandomVerifier(acceptance: 0.6), numericGuard: false)
        let accepted = try chain.verify(Self.pairs).filter { $0 }.count
        #expect(abs(accepted - 6_000) < 250)
        #expect(chain.guardVetoes == 0)
    }
}

/// Random-weight models never write a blank line, so the synthetic benchmark cuts steps by length.
@Suite("Fixed-length steps")
struct FixedLengthStepTests {
    static let words = ["a b c d e f g h i j k l m n o p done <eos>"]

    @Test func capCutStepsAreVerifiedWhenTheCapIsABoundary() throws {
        var s = Scenario(targetSteps: Self.words, draftSteps: Self.words)
        s.config.rules.maxTokens = 4
        s.config.rules.capIsBoundary = true
        let o = try s.run()
        var ar = s
        ar.config.mode = .ar
        #expect(o.text == (try ar.run().text))
        #expect(o.stats.acceptedDraftSteps >= 2)
    }

    @Test func withoutItCapCutStepsAreNeverAccepted() throws {
        var s = Scenario(targetSteps: Self.words, draftSteps: Self.words)
        s.config.rules.maxTokens = 4
        let o = try s.run()
        #expect(o.stats.acceptedDraftSteps == 0)
    }
}
