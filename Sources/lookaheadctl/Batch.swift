import ArgumentParser
import Foundation
import LookaheadProtocol

struct Batch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queue batch jobs and follow them: one ask per JSONL line, drained at low priority.",
        discussion: """
            A job's input is JSONL, one request per line with the parameters of `ask`:
              {"custom_id": "q1", "prompt": "…", "mode": "ar", "max_tokens": 256}
            or, all lines alike, in OpenAI's Batch format (results then come back in OpenAI's output format):
              {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": […]}}
            custom_id is required and unique within the job. Jobs run inside lookaheadd's drain window \
            (drain_window in its config) unless submitted with --now, and belong to the user who \
            submitted them: only that user and root can see, read or cancel them.
            """,
        subcommands: [BatchSubmit.self, BatchList.self, BatchStatus.self, BatchResults.self, BatchCancel.self])
}

struct BatchSubmit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Queue a JSONL file as a job and print its id.",
        discussion: """
            A file of up to 4 MiB is sent in the request. A larger one is read by lookaheadd from its \
            path, so lookaheadd must be able to read it and it must belong to you.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Run at once instead of waiting for the drain window.") var now = false
    @Option(help: ArgumentHelp(
        "Lines not started by then expire: +DURATION (+90m, +8h, +2d), ISO 8601 (2025-06-02T07:00:00Z; local time without a zone) or unix seconds.",
        valueName: "time"))
    var deadline: String?
    @Option(help: ArgumentHelp(
        "Submitting again with the same key (up to 256 bytes) returns the job already queued instead of a second one, so a retry after a lost reply is safe.",
        valueName: "key"))
    var idempotencyKey: String?
    @Flag(help: "Print the job object as JSON.") var json = false
    @Argument(help: "The JSONL file, or - for standard input.", completion: .file()) var file: String

    /// Half the frame limit: JSON escaping can grow the content, and the request must still fit.
    static let inlineLimit = Frame.defaultMaxPayload / 2

    func run() throws {
        var params: Params = ["now": .bool(now)]
        if let deadline { params.object["deadline"] = .double(try Deadline.parse(deadline)) }
        if let idempotencyKey { params.object["idempotency_key"] = .string(idempotencyKey) }
        for (key, value) in try input() { params.object[key] = value }
        let job = try connection.connect().call(method: "jobs.submit", params: params)
        let object = job.objectValue ?? [:]
        if json {
            FileHandle.standardOutput.write("\(job)\n")
        } else if object["duplicate"]?.boolValue == true {
            let state = object["state"]?.stringValue ?? "?"
            FileHandle.standardOutput.write("\(object["id"]?.stringValue ?? "?") was already submitted with this key; it is \(state)\n")
        } else {
            let total = object["counts"]?.objectValue?["total"]?.intValue ?? 0
            let when = now ? "starts now" : "starts when the drain window (if lookaheadd has one) is open"
            FileHandle.standardOutput.write("\(object["id"]?.stringValue ?? "?") queued, \(total) line\(total == 1 ? "" : "s"); \(when)\n")
        }
    }

    /// `content`, or `path` for a file too large to send.
    private func input() throws -> JSONObject {
        if file == "-" { return ["content": .string(try utf8(FileHandle.standardInput.readDataToEndOfFile()))] }
        let url = URL(fileURLWithPath: file)
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int ?? 0
        if size > Self.inlineLimit { return ["path": .string(url.standardizedFileURL.path)] }
        return ["content": .string(try utf8(Data(contentsOf: url)))]
    }

    /// Sent as a JSON string, the input must be UTF-8; a bad line is named here, as lookaheadd would.
    private func utf8(_ data: Data) throws -> String {
        if let text = String(validating: data, as: UTF8.self) { return text }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let bad = (lines.firstIndex { String(validating: $0, as: UTF8.self) == nil } ?? 0) + 1
        throw ValidationError("\(file): line \(bad): not valid UTF-8")
    }
}

struct BatchList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List your jobs, newest first (root: everyone's).",
        discussion: "With --json: {\"jobs\": [...]}, every page of the daemon's answer in one object.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result object as JSON.") var json = false

    func run() throws {
        let client = try connection.connect()
        // The daemon answers in pages so that no reply outgrows a frame; a list is all of them.
        var jobs: [JSONValue] = []
        var after: JSONValue = .null
        repeat {
            let page = try client.call(method: "jobs.list", params: ["after": after])
            jobs += page.objectValue?["jobs"]?.arrayValue ?? []
            after = page.objectValue?["next_after"] ?? .null
        } while !after.isNull
        if json { return FileHandle.standardOutput.write("\(JSONValue.object(["jobs": .array(jobs)]))\n") }
        var out = pad("ID", 22) + pad("STATE", 12) + pad("DONE/TOTAL", 12) + pad("FAILED", 8) + "CREATED\n"
        for job in jobs.compactMap(\.objectValue) {
            let c = JobCounts(job)
            out += pad(job["id"]?.stringValue ?? "?", 22) + pad(job["state"]?.stringValue ?? "?", 12)
                + pad("\(c.done)/\(c.total)", 12) + pad("\(c.failed)", 8) + localTime(job["created_at"]) + "\n"
        }
        FileHandle.standardOutput.write(jobs.isEmpty ? "no jobs\n" : out)
    }

    private func pad(_ s: String, _ width: Int) -> String { s.padding(toLength: max(width, s.count + 1), withPad: " ", startingAt: 0) }
}

struct BatchStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a job's progress: lines done and failed, tokens/s, ETA.",
        discussion: "With --watch it refreshes until the job ends, then exits 0 if it completed and 1 otherwise.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Refresh until the job is over.") var watch = false
    @Option(help: "Seconds between refreshes with --watch.") var interval: Double = 1
    @Flag(help: "Print the job object as JSON (one line per refresh with --watch).") var json = false
    @Argument(help: "The job id.") var id: String

    static let finalStates: Set<String> = ["completed", "failed", "cancelled", "expired"]

    func validate() throws {
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
    }

    func run() throws {
        let client = try connection.connect()
        let redraw = watch && !json && isatty(STDOUT_FILENO) == 1
        var last = ""
        while true {
            let job = try client.call(method: "jobs.get", params: ["id": .string(id)])
            let state = job.objectValue?["state"]?.stringValue ?? ""
            let done = Self.finalStates.contains(state)
            let line = json ? "\(job)" : Self.progressLine(job.objectValue ?? [:])
            if redraw {
                FileHandle.standardOutput.write("\r\u{1B}[K" + line + (done ? "\n" : ""))
            } else if line != last {
                FileHandle.standardOutput.write(line + "\n")
            }
            last = line
            guard watch else { return }
            if done { throw ExitCode(state == "completed" ? 0 : ExitStatus.failure.rawValue) }
            Thread.sleep(forTimeInterval: interval)
        }
    }

    /// `job_… in_progress [#######.............] 4/12 done, 0 failed · 14.2 tok/s · ETA 1:05`
    static func progressLine(_ job: JSONObject) -> String {
        let c = JobCounts(job)
        let width = 24
        let filled = c.total == 0 ? width : (c.done + c.failed) * width / c.total
        var line = "\(job["id"]?.stringValue ?? "?") \(job["state"]?.stringValue ?? "?") ["
            + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + "\(c.done)/\(c.total) done, \(c.failed) failed"
        if c.cancelled + c.expired > 0 { line += ", \(c.cancelled + c.expired) not run" }
        if let tps = job["tokens_per_second"]?.doubleValue { line += String(format: " · %.1f tok/s", tps) }
        if let eta = job["eta_seconds"]?.doubleValue, c.queued + c.inProgress > 0 { line += " · ETA " + duration(eta) }
        if let error = job["error"]?.stringValue { line += " · \(error)" }
        return line
    }

    private static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

struct BatchResults: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results", abstract: "Print a job's results: one JSON line per input line, with its custom_id.",
        discussion: """
            Each line has custom_id, line, state and attempts, then result (the ask result with usage) \
            or error. Lines not yet run have neither. A job submitted in OpenAI's Batch format gets \
            OpenAI's output lines instead, {id, custom_id, response, error}, for the lines that have \
            ended. The output is JSON lines in any case.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: ArgumentHelp(
        "Write to this file instead of standard output: whole or not at all (a new file renamed over it), mode 0600; a symbolic link there is refused.",
        valueName: "file"), completion: .file())
    var output: String?
    @Argument(help: "The job id.") var id: String

    func run() throws {
        let client = try connection.connect()
        guard let output else {
            try fetch(client) { FileHandle.standardOutput.write($0) }
            return
        }
        let file = try OutputFile(output)
        do {
            let lines = try fetch(client) { try file.write($0) }
            try file.commit()
            FileHandle.standardError.write("\(lines) lines written to \(output)\n")
        } catch {
            file.discard()
            throw error
        }
    }

    /// Every page of the job's results, one JSON line per input line, handed on page by page;
    /// returns how many lines.
    @discardableResult
    private func fetch(_ client: Client, into write: (Data) throws -> Void) throws -> Int {
        var after: Int64 = 0
        var lines = 0
        while true {
            let page = try client.call(method: "jobs.results", params: ["id": .string(id), "after": .int(after)])
            let object = page.objectValue ?? [:]
            let items = object["lines"]?.arrayValue ?? []
            try write(Data(items.map { "\($0)\n" }.joined().utf8))
            lines += items.count
            guard let next = object["next_after"]?.intValue else { return lines }
            after = next
        }
    }
}

struct BatchCancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a job: its queued lines never run, lines in flight stop; answers already in are kept.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the job object as JSON.") var json = false
    @Argument(help: "The job id.") var id: String

    func run() throws {
        let job = try connection.connect().call(method: "jobs.cancel", params: ["id": .string(id)])
        if json { return FileHandle.standardOutput.write("\(job)\n") }
        let object = job.objectValue ?? [:]
        let c = JobCounts(object)
        let state = object["state"]?.stringValue ?? "?"
        FileHandle.standardOutput.write(state == "cancelled"
            ? "\(id) cancelled: \(c.done) of \(c.total) lines answered\n"
            : "\(id) was already \(state)\n")
    }
}

/// A job object's `counts`.
struct JobCounts {
    var total = 0, queued = 0, inProgress = 0, done = 0, failed = 0, cancelled = 0, expired = 0

    init(_ job: JSONObject) {
        let c = job["counts"]?.objectValue ?? [:]
        func n(_ key: String) -> Int { Int(c[key]?.intValue ?? 0) }
        (total, queued, inProgress, done, failed) = (n("total"), n("queued"), n("in_progress"), n("done"), n("failed"))
        (cancelled, expired) = (n("cancelled"), n("expired"))
    }
}

/// Unix seconds as local `yyyy-MM-dd HH:mm`.
func localTime(_ value: JSONValue?) -> String {
    guard let seconds = value?.doubleValue else { return "-" }
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm"
    return formatter.string(from: Date(timeIntervalSince1970: seconds))
}

/// `--deadline` as unix seconds.
enum Deadline {
    static func parse(_ text: String, now: Date = Date()) throws -> Double {
        if text.hasPrefix("+"), let unit = text.last, let factor = ["s": 1.0, "m": 60, "h": 3600, "d": 86400][unit],
           let amount = Double(text.dropFirst().dropLast()), amount > 0 {
            return now.timeIntervalSince1970 + amount * factor
        }
        if let seconds = Double(text), seconds.isFinite { return seconds }
        let zoned = ISO8601DateFormatter()
        if let date = zoned.date(from: text) { return date.timeIntervalSince1970 }
        let local = DateFormatter()
        local.locale = Locale(identifier: "en_US_POSIX")
        for format in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm"] {
            local.dateFormat = format
            if let date = local.date(from: text) { return date.timeIntervalSince1970 }
        }
        throw ValidationError("--deadline: '\(text)' is not +DURATION (+90m), ISO 8601 (2025-06-02T07:00:00Z) or unix seconds")
    }
}
