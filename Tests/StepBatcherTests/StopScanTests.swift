import Testing
@testable import StepBatcher

private func run(_ stops: [String], _ steps: [(String, Bool)]) -> (shown: [String], text: String, stopped: Bool) {
    var scan = StopScan(stops)
    var shown: [String] = []
    for (text, answer) in steps {
        let s = scan.feed(text, answer: answer)
        if !s.isEmpty { shown.append(s) }
        if scan.stopped { break }
    }
    if !scan.stopped {
        let rest = scan.flush()
        if !rest.isEmpty { shown.append(rest) }
    }
    return (shown, shown.joined(), scan.stopped)
}

@Suite struct StopScanTests {
    @Test func theTextEndsBeforeTheFirstStopString() {
        let r = run(["STOP", "END"], [("One.\n\n", false), ("Two END three STOP.\n\n", false), ("Never.", false)])
        #expect(r.stopped)
        #expect(r.text == "One.\n\nTwo ")
    }

    @Test func aStopStringAcrossTwoStepsIsCaughtAndNothingPastItIsShown() {
        let r = run(["Answer:"], [("First step. Ans", false), ("wer: 42", false)])
        #expect(r.stopped)
        #expect(r.shown == ["First step. "])
        #expect(r.text == "First step. ")
    }

    @Test func heldTextThatNeverBecomesAStopStringIsShownAtTheEnd() {
        let r = run(["Answer:"], [("Ans", false), ("we", false)])
        #expect(!r.stopped)
        #expect(r.text == "Answe")
    }

    @Test func stopStringsApplyToTheAnswerNotTheThinking() {
        let steps = [("<think>\nSTOP thinking here.\n\n", false), ("Done.</think>", false), ("\n\nThe answer STOP more", true)]
        let r = run(["STOP"], steps)
        #expect(r.stopped)
        #expect(r.text == "<think>\nSTOP thinking here.\n\nDone.</think>\n\nThe answer ")
    }

    @Test func withoutStopStringsEveryStepPassesAsItIs() {
        let r = run([], [("a", false), ("b", true)])
        #expect(r.shown == ["a", "b"] && !r.stopped)
    }
}
