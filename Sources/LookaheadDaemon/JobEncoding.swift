import JobStore
import LookaheadProtocol
import OpenAIProtocol
import StepBatcher

/// JSON shapes of jobs and their lines (docs/protocol.md, `jobs.*`). Times are unix seconds.
enum JobEncoding {
    static func job(_ job: JobRecord) -> JSONObject {
        let c = job.counts
        return [
            "id": .string(job.id), "state": .string(job.state.rawValue), "owner_uid": JSONValue(job.owner),
            "now": .bool(job.runNow), "created_at": .double(job.createdAt), "started_at": time(job.startedAt),
            "finished_at": time(job.finishedAt), "deadline": time(job.deadline),
            "counts": [
                "total": JSONValue(c.total), "queued": JSONValue(c.queued), "in_progress": JSONValue(c.inProgress),
                "done": JSONValue(c.done), "failed": JSONValue(c.failed), "cancelled": JSONValue(c.cancelled),
                "expired": JSONValue(c.expired),
            ],
            "progress": .double(job.progress), "error": job.error.map(JSONValue.string) ?? .null,
            "idempotency_key": job.idempotencyKey.map(JSONValue.string) ?? .null,
            "format": .string(job.format.rawValue),
        ]
    }

    /// A line of `jobs.results` in its job's format; nil for an OpenAI line that has not ended,
    /// which OpenAI's output does not list.
    static func line(_ line: LineResult, of job: JobRecord) -> JSONValue? {
        switch job.format {
        case .native: return native(line)
        case .openAI: return OpenAIBatch.outputLine(line, jobID: job.id).map(JSONValue.object)
        }
    }

    private static func native(_ line: LineResult) -> JSONValue {
        var object: JSONObject = [
            "custom_id": .string(line.customID), "line": JSONValue(line.lineNo), "state": .string(line.state.rawValue),
            "attempts": JSONValue(line.attempts), "finished_at": time(line.finishedAt),
        ]
        if let result = line.result { object["result"] = result }
        if let error = line.error { object["error"] = error }
        return .object(object)
    }

    /// A native line's result: the `ask` result, with OpenAI-style `usage` and the time the batcher
    /// admitted the line. An OpenAI line's (`openAI` given): the chat.completion or
    /// text_completion body the HTTP endpoint would have answered, naming the served `model`.
    static func lineResult(
        _ generation: Generation, _ ask: PreparedAsk, startedAt: Double?,
        as openAI: (endpoint: Endpoint, model: String, created: Double)?
    ) -> JSONValue {
        let result = AskResult(generation, mode: ask.config.mode, verifier: ask.verifier)
        if let openAI {
            let responder = CompletionResponder(endpoint: openAI.endpoint, model: openAI.model, created: Int64(openAI.created))
            return .object(responder.body(result))
        }
        var object = result.json
        object["usage"] = .object(result.usage)
        object["started_at"] = time(startedAt)
        return .object(object)
    }

    private static func time(_ seconds: Double?) -> JSONValue { seconds.map(JSONValue.double) ?? .null }
}
