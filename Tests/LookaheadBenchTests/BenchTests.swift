import Foundation
import Testing
import Lookahead
import LookaheadBench
import LookaheadProtocol
#if canImport(FoundationXML)
import FoundationXML
#endif

@Suite("Bench grading")
struct GradingTests {
    @Test func lastBoxedWins() {
        #expect(Grader.answer(of: "First \\boxed{12}, then on reflection \\boxed{18}.") == "18")
        #expect(Grader.answer(of: "So the answer is \\boxed{\\frac{1}{2}}") == "2")
        #expect(Grader.answer(of: "She makes \\boxed{\\$1,200.00} a day") == "1200")
        #expect(Grader.answer(of: "\\boxed{18 \\text{ dollars}}") == "18")
        #expect(Grader.answer(of: "\\boxed{x = -4}") == "-4")
        #expect(Grader.answer(of: "\\boxed{25\\%}") == "25")
    }

    @Test func withoutABoxTheLastNumberCounts() {
        #expect(Grader.answer(of: "16 - 3 - 4 = 9 eggs, so 9 * 2 = $18.") == "18")
        #expect(Grader.answer(of: "The balance is -3 dollars") == "-3")
        #expect(Grader.answer(of: "16-3") == "3")
        #expect(Grader.answer(of: "It costs 1,234,567.50 in total.") == "1234567.5")
        #expect(Grader.answer(of: "No numbers here.") == nil)
        // A box the token budget cut off commits to nothing: fall back to the last number.
        #expect(Grader.answer(of: "48 + 24 = 72, so \\boxed{7") == "7")
    }

    @Test func referenceFollowsTheLastMarker() {
        #expect(Grader.reference(ofSolution: "She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18")
        #expect(Grader.reference(ofSolution: "… #### 1,000") == "1000")
        #expect(Grader.reference(ofSolution: "no marker") == nil)
    }

    @Test func valuesCompareByNumber() {
        #expect(Grader.isCorrect("18", reference: "18"))
        #expect(Grader.isCorrect(Grader.normalise("18.0"), reference: "18"))
        #expect(!Grader.isCorrect("17", reference: "18"))
        #expect(!Grader.isCorrect(nil, reference: "18"))
    }

    @Test func problemsParseWithOffsetAndLimit() throws {
        let jsonl = """
            {"question": "Q1?", "answer": "a\\n#### 1"}

            {"question": "Q2?", "answer": "b\\n#### 2,000"}
            {"question": "Q3?", "answer": "c\\n#### 3"}
            """
        let problems = try Problem.parse(jsonl: jsonl, offset: 1, limit: 1)
        #expect(problems == [Problem(line: 3, question: "Q2?", reference: "2000")])
        #expect(problems[0].prompt.hasSuffix("put your final answer within \\boxed{}."))
        #expect(throws: BenchError.self) { try Problem.parse(jsonl: #"{"question": "Q?", "answer": "no marker"}"#) }
    }
}

@Suite("Bench report")
struct ReportTests {
    static func stats(wall: Double, tokens: Int, accepted: Int = 0, rejected: Int = 0, draft: (Int, Double) = (0, 0),
                      target: (Int, Double) = (0, 0), verify: Double = 0, ngram: (Int, Int) = (0, 0)) -> SessionStats {
        var s = SessionStats()
        s.wallSeconds = wall
        s.generatedTokens = tokens
        s.acceptedDraftSteps = accepted
        s.rejectedDraftSteps = rejected
        (s.draftPasses, s.draftSeconds) = draft
        (s.targetPasses, s.targetSeconds) = target
        s.verifySeconds = verify
        if ngram.0 > 0 {
            s.proposed[.ngram] = ngram.0
            s.acceptedProposals[.ngram] = ngram.1
        }
        return s
    }

    static let settings = BenchSettings(data: "test.jsonl", offset: 0, modes: [.ar, .lookahead], gamma: 4,
                                        verifier: "embedding", maxTokens: 128, stepTokens: 100, fixedSteps: false,
                                        threads: 2, date: "2025-01-01T00:00:00Z")

    static func record(_ line: Int, _ mode: Mode, _ text: String, _ stats: SessionStats) -> RunRecord {
        RunRecord(problem: Problem(line: line, question: "Q", reference: "18"), mode: mode, text: text,
                  finishReason: "stop", stats: stats)
    }

    /// Two problems: lookahead is 1.5× faster on wall time overall, although per problem it is 2× and 1×.
    static let report = BenchReport(settings: settings, records: [
        record(1, .ar, "\\boxed{18}", stats(wall: 8, tokens: 80, target: (80, 8))),
        record(1, .lookahead, "\\boxed{18}", stats(wall: 4, tokens: 80, accepted: 3, rejected: 1,
                                                     draft: (100, 2), target: (40, 2), verify: 0.4)),
        record(2, .lookahead, "\\boxed{17}", stats(wall: 4, tokens: 40, accepted: 0, rejected: 2,
                                                     draft: (100, 3), target: (40, 4), verify: 0.4)),
        record(2, .ar, "the answer is 18", stats(wall: 4, tokens: 40, target: (40, 4))),
    ])

    @Test func aggregatesPoolOverProblems() throws {
        let s = Self.report.summaries
        #expect(s.map(\.mode) == [.ar, .lookahead])
        let ar = s[0], la = s[1]
        #expect(ar.speedup == 1)
        #expect(ar.alpha == nil && ar.c == nil)
        #expect(ar.correct == 2 && ar.n == 2)
        #expect(la.wallSeconds == 8 && la.tokens == 120)
        #expect(la.tokensPerSecond == 15)
        #expect(la.speedup == 1.5)  // (8 + 4) / (4 + 4), not the mean of 2× and 1×
        #expect(la.alpha == 0.5)     // 3 of 6 verified steps, pooled
        #expect(la.c == (5.0 / 200) / (6.0 / 80))
        #expect(la.verifierShare == 0.1)
        #expect(la.accuracy == 0.5)
        let model = try #require(la.modelSpeedup(gamma: 4))
        #expect(abs(model - SpeedupModel.asyncSpeedup(alpha: 0.5, c: 1.0 / 3, gamma: 4)) < 1e-12)
    }

    @Test func speedupNeedsArOnTheSameProblems() {
        var settings = Self.settings
        settings.modes = [.lookahead]
        let report = BenchReport(settings: settings, records: Self.report.records.filter { $0.mode == .lookahead })
        #expect(report.summaries[0].speedup == nil)
        #expect(report.chart().series.first?.measured == nil)
    }

    @Test func jsonCarriesTheDocumentedKeys() throws {
        let json = try JSONCodec.decodeObject(Array("\(Self.report.json())".utf8))
        let modes = try #require(json["modes"]?.objectValue)
        let lookahead = try #require(modes["lookahead"]?.objectValue)
        for key in ["wall_s", "tokens", "tokens_per_s", "speedup", "alpha", "c", "accuracy", "correct", "n"] {
            #expect(lookahead[key] != nil, "missing \(key)")
        }
        #expect(lookahead["speedup"]?.doubleValue == 1.5)
        #expect(modes["ar"]?.objectValue?["alpha"] == .null)
        #expect(json["problems"]?.arrayValue?.count == 4)
        #expect(json["settings"]?.objectValue?["gamma"]?.intValue == 4)
    }

    @Test func tableHasARowPerMode() {
        let lines = Self.report.table().split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("ar ") && $0.contains("1.00×") })
        #expect(lines.contains { $0.hasPrefix("lookahead ") && $0.contains("1.50×") && $0.contains("0.50 (3/6)") })
    }
}

@Suite("Speed-up chart")
struct ChartTests {
    @Test func svgHasACurveAndAPointPerSeries() throws {
        let chart = ReportTests.report.chart()
        #expect(chart.series.count == 1)
        let svg = chart.svg()
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 1)
        // The measured point and its legend mark.
        #expect(svg.components(separatedBy: "<circle").count - 1 == 2)
        let polyline = try #require(svg.split(separator: "\n").first { $0.hasPrefix("<polyline") })
        let points = try #require(polyline.split(separator: "\"").dropFirst().first { $0.contains(",") })
        #expect(points.split(separator: " ").count == 8)  // γ = 1 … 8
        for g in 1...8 { #expect(svg.contains(">\(g)</text>")) }
        #expect(svg.contains("1.50×"))
        #expect(svg.contains("γ (draft steps kept ahead)"))
    }

    /// The model's points sit where the formula puts them: γ = 1 is always 1×.
    @Test func curveFollowsTheModel() {
        let series = SpeedupChart.Series(label: "lookahead", alpha: 0.6, c: 0.2, gamma: 4, measured: 1.3)
        #expect(series.model(gamma: 1) == 1)
        #expect(series.model(gamma: 8) == SpeedupModel.asyncSpeedup(alpha: 0.6, c: 0.2, gamma: 8))
    }

    @Test func labelsAreEscaped() {
        let chart = SpeedupChart(series: [], title: "a < b & c", subtitle: "")
        let svg = chart.svg()
        #expect(svg.contains("a &lt; b &amp; c"))
        #expect(svg.contains("no lookahead mode"))
    }

    #if canImport(FoundationXML)
    @Test func svgIsWellFormedXML() {
        for chart in [ReportTests.report.chart(), SpeedupChart(series: [], title: "t", subtitle: "s")] {
            let parser = XMLParser(data: Data(chart.svg().utf8))
            #expect(parser.parse(), "\(String(describing: parser.parserError))")
        }
    }
    #endif
}

@Suite("Bench lossless check")
struct LosslessCheckTests {
    @Test func splitsAreFoundWhateverTheRunOrder() {
        var check = LosslessCheck()
        check.record(problem: 3, mode: .lookahead, tokens: [1, 2, 9, 4])
        check.record(problem: 3, mode: .ar, tokens: [1, 2, 3, 4])
        check.record(problem: 3, mode: .sd, tokens: [1, 2, 3, 4])
        check.record(problem: 5, mode: .ar, tokens: [7, 8])
        check.record(problem: 5, mode: .lookaheadSD, tokens: [7, 8, 9])
        check.record(problem: 6, mode: .sd, tokens: [1])  // no ar run: nothing to compare with
        #expect(check.compared == 3)
        #expect(check.splits == [LosslessCheck.Split(problem: 3, mode: .lookahead, token: 2),
                                 LosslessCheck.Split(problem: 5, mode: .lookaheadSD, token: 2)])
        #expect(check.report.hasPrefix("lossless: 1/3 runs token-identical to ar\n"))
    }

    @Test func identicalRunsPass() {
        var check = LosslessCheck()
        for mode in Mode.allCases { check.record(problem: 1, mode: mode, tokens: [4, 5, 6]) }
        #expect(check.compared == Mode.allCases.count - 1)
        #expect(check.splits.isEmpty)
    }
}
