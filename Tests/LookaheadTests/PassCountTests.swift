import Testing
import Lookahead

/// Modes that speculate tokens write the target's text in fewer target passes than `ar`, counted
/// as passes on both sides. (SessionTests' `everyModeWritesWhatTheTargetWrites` compares the pass
/// count with the number of characters in `ar`'s text, which no run can fail: there, `sd` takes
/// exactly as many passes as `ar`, its script offering the n-gram lookup nothing to reuse.)
@Suite("Target passes by mode")
struct PassCountTests {
    /// Text that repeats itself, so the n-gram lookup (`sd`) has something to propose; the draft
    /// (`lookahead+sd`) gets one step wrong.
    static let steps = ["3 apples and 5 pears |", "so 3 apples and 5 pears make 8 fruits |", "answer : 8 fruits |", "done <eos>"]

    @Test(arguments: Mode.allCases.filter(\.speculatesTokens))
    func speculationTakesFewerTargetPassesThanAR(mode: Mode) throws {
        var draft = Self.steps
        draft[2] = "answer : 9 fruits |"
        var s = Scenario(targetSteps: Self.steps, draftSteps: draft)
        s.config.proposalTokens = 3
        s.config.mode = .ar
        let ar = try s.run()
        s.config.mode = mode
        let o = try s.run()
        let accepted = o.stats.acceptedProposals.values.reduce(0, +)
        #expect(o.text == ar.text)
        #expect(o.tokens.count == ar.tokens.count)
        #expect(accepted > 0, "\(mode.rawValue): no proposal taken (\(o.stats.proposed))")
        #expect(o.stats.targetPasses < ar.stats.targetPasses,
                "\(mode.rawValue): \(o.stats.targetPasses) target passes, ar \(ar.stats.targetPasses), \(accepted) proposals taken")
    }
}
