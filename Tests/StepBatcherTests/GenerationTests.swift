import Lookahead
import Testing
@testable import StepBatcher

@Suite struct GenerationTests {
    private func thinking(_ text: String) -> String {
        Generation(text: text, tokens: [], steps: [], finishReason: .stop, stats: SessionStats()).thinking
    }

    @Test func thinkingIsTheReasoningBetweenTheTags() {
        #expect(thinking("<think>\nFirst.\n\nSecond.\n</think>\n\nAnswer.") == "First.\n\nSecond.")
        #expect(thinking("A template opened it.\n</think>\n\nAnswer.") == "A template opened it.")
        #expect(thinking("No reasoning, just <think> in passing.") == "")
        #expect(thinking("<think></think>Answer.") == "")
    }
}
