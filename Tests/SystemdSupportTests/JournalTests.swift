import Logging
import Testing
@testable import SystemdSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct JournalTests {
    /// 2025-01-02T03:04:05.678901234Z
    static let instant = timespec(tv_sec: 1_735_787_045, tv_nsec: 678_901_234)

    @Test func aLineIsTimestampLevelMessageAndSortedFields() {
        let line = Journal.line(.info, "model loaded", [("PATH", "/m/q.gguf"), ("SECONDS", "3.2")], at: Self.instant)
        #expect(line == "2025-01-02T03:04:05.678Z info model loaded PATH=/m/q.gguf SECONDS=3.2\n")
    }

    @Test func valuesThatWouldBreakTheLineAreQuoted() {
        let line = Journal.line(.warning, "two\nlines", [("A", "x y"), ("B", ""), ("C", "k=v"), ("D", "say \"hi\"\n")],
                                at: Self.instant)
        #expect(line == #"2025-01-02T03:04:05.678Z warning two\nlines A="x y" B="" C="k=v" D="say \"hi\"\n""# + "\n")
    }

    @Test func timestampsAreUTCWithZeroPaddedMilliseconds() {
        #expect(Journal.timestamp(timespec(tv_sec: 0, tv_nsec: 5_000_000)) == "1970-01-01T00:00:00.005Z")
        #expect(Journal.timestamp(Self.instant) == "2025-01-02T03:04:05.678Z")
    }

    @Test func keysFollowJournaldFieldNameRules() {
        #expect(Journal.fieldName("path") == "PATH")
        #expect(Journal.fieldName("model-name") == "MODEL_NAME")
        #expect(Journal.fieldName("_PID") == "PID", "leading _ marks trusted fields; journald drops them")
        #expect(Journal.fieldName("2nd") == "F2ND")
        #expect(Journal.fieldName("café") == "CAF_")
        #expect(Journal.fieldName(String(repeating: "K", count: 80)).count == 64)
    }

    @Test func journalEntriesCarryMessagePriorityIdentifierCodeLocationAndFields() {
        let journal = Journal(destination: .journal)
        let fields = journal.journalFields(.warning, "slow tick", [("MS", "812")],
                                           file: "StepBatcher/TickRunner.swift", function: "run()", line: 42)
        #expect(fields == [
            "MESSAGE=slow tick", "PRIORITY=4", "SYSLOG_IDENTIFIER=lookaheadd",
            "CODE_FILE=StepBatcher/TickRunner.swift", "CODE_LINE=42", "CODE_FUNC=run()", "MS=812",
        ])
    }

    @Test func levelsBelowTheMinimumAreDropped() throws {
        let pipe = try makePipe()
        let journal = Journal(minimumLevel: .info, destination: .lines(fd: pipe.write))
        journal.log(.debug, "hidden")
        journal.log(.info, "i")
        journal.log(.notice, "n")
        journal.log(.warning, "w", ["key": "v"])
        journal.log(.error, "e")
        close(pipe.write)
        let levels = readToEnd(pipe.read).split(separator: "\n").map { $0.split(separator: " ").dropFirst().joined(separator: " ") }
        close(pipe.read)
        #expect(levels == ["info i", "notice n", "warning w KEY=v", "error e"])
    }

    /// swift-log's loggers, in every module, write through the journal: metadata (the logger's and
    /// the entry's) become fields, the label the LOGGER field, and the handler's level filters.
    @Test func loggersWriteThroughTheJournalWithTheirMetadataAsFields() throws {
        let pipe = try makePipe()
        let journal = Journal(minimumLevel: .debug, destination: .lines(fd: pipe.write))
        var logger = Logger(label: "lookaheadd.test") { JournalLogHandler(label: $0, journal: journal, logLevel: .info) }
        logger[metadataKey: "session"] = "7"
        logger.debug("hidden")
        logger.info("admitted", metadata: ["sequences": "5"])
        logger.critical("engine failure")
        close(pipe.write)
        let lines = readToEnd(pipe.read).split(separator: "\n").map { $0.split(separator: " ").dropFirst().joined(separator: " ") }
        close(pipe.read)
        #expect(lines == ["info admitted LOGGER=lookaheadd.test SEQUENCES=5 SESSION=7",
                          "error engine failure LOGGER=lookaheadd.test SESSION=7"])
    }

    // JOURNAL_STREAM is process-wide and fd 2 is redirected: both need a process of their own.
    @Test func withoutJournalStreamEntriesAreLinesOnStderr() async {
        await #expect(processExitsWith: .success) {
            unsetenv("JOURNAL_STREAM")
            let pipe = try makePipe()
            let stderr = dup(2)
            dup2(pipe.write, 2)
            close(pipe.write)
            Journal().log(.info, "model loaded", ["PATH": "/m/q.gguf", "SECONDS": "3.2"])
            dup2(stderr, 2)
            let text = readToEnd(pipe.read)
            #expect(text.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info model loaded PATH=\/m\/q\.gguf SECONDS=3\.2\n/) != nil,
                    "stderr got: \(text)")
        }
    }

    @Test func theJournalIsUsedOnlyWhenJournalStreamNamesOurStderr() async {
        await #expect(processExitsWith: .success) {
            unsetenv("JOURNAL_STREAM")
            #expect(Journal.Destination.automatic == .lines(fd: 2))
            var st = stat()
            fstat(2, &st)
            setenv("JOURNAL_STREAM", "\(st.st_dev):\(st.st_ino)", 1)
            #expect(Journal.Destination.automatic == .journal)
            setenv("JOURNAL_STREAM", "\(st.st_dev):\(st.st_ino + 1)", 1)
            #expect(Journal.Destination.automatic == .lines(fd: 2), "inherited from a parent whose stderr was the journal")
        }
    }
}
