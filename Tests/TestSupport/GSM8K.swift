import Foundation

/// The GSM8K test split vendored in this repository (Tests/Data/gsm8k/test.jsonl, MIT, licence
/// beside it), with the reference's prompt suffix. A missing or short file fails the test that
/// asks for more problems than it holds, naming the file; nothing traps.
public enum GSM8K {
    public struct Problem: Sendable, Equatable {
        public var question: String
        /// The reference's final answer (what follows `####`).
        public var answer: String
    }

    /// Tests/Data/gsm8k/test.jsonl, found from this source file.
    public static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Data/gsm8k/test.jsonl")

    public static let suffix = "\nPlease reason step by step, and put your final answer within \\boxed{}."

    private static let loaded: Result<[Problem], TestFailure> = {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            return .failure(TestFailure("GSM8K data missing: \(file.path) (vendored in the repository; restore it with git)"))
        }
        var problems: [Problem] = []
        for (n, line) in text.split(separator: "\n").enumerated() where !line.allSatisfy(\.isWhitespace) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let question = object["question"] as? String, let answer = object["answer"] as? String else {
                return .failure(TestFailure("\(file.path):\(n + 1): not a GSM8K line (question, answer)"))
            }
            let final = answer.components(separatedBy: "####").last ?? ""
            problems.append(Problem(question: question, answer: final.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        return .success(problems)
    }()

    /// The first `count` problems; throws, naming the file, when there are fewer.
    public static func problems(_ count: Int) throws -> [Problem] {
        let all = try loaded.get()
        guard all.count >= count else { throw TestFailure("\(file.path) holds \(all.count) problems; the test needs \(count)") }
        return Array(all.prefix(count))
    }

    /// Problem `index` (0-based); throws, naming the file, when there is no such problem.
    public static func problem(_ index: Int) throws -> Problem { try problems(index + 1)[index] }

    /// The first `count` questions as prompts (question + the reference suffix).
    public static func prompts(_ count: Int) throws -> [String] { try problems(count).map(prompt) }

    public static func prompt(_ problem: Problem) -> String { problem.question + suffix }
}
