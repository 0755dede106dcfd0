import LookaheadDaemon
import Testing

@Suite struct StateDirectoryTests {
    @Test func theConfiguredDirectoryWins() {
        #expect(StateDirectory.resolve(configured: "/srv/l", environment: ["STATE_DIRECTORY": "/var/lib/lookaheadd"]) == "/srv/l")
    }

    @Test func systemdsStateDirectoryComesNext() {
        let environment = ["STATE_DIRECTORY": "/var/lib/lookaheadd:/var/lib/other", "XDG_STATE_HOME": "/x"]
        #expect(StateDirectory.resolve(configured: "", environment: environment) == "/var/lib/lookaheadd")
    }

    @Test func thenTheXDGStateHomeThenHome() {
        #expect(StateDirectory.resolve(configured: "", environment: ["XDG_STATE_HOME": "/s", "HOME": "/h"]) == "/s/lookaheadd")
        #expect(StateDirectory.resolve(configured: "", environment: ["HOME": "/h"]) == "/h/.local/state/lookaheadd")
    }

    @Test func relativeOrEmptyValuesCountAsUnset() {
        let environment = ["STATE_DIRECTORY": "", "XDG_STATE_HOME": "state", "HOME": "/h"]
        #expect(StateDirectory.resolve(configured: "", environment: environment) == "/h/.local/state/lookaheadd")
    }
}

@Suite struct JobClockTests {
    @Test func theFakeTimeFixesTheTimeOfDayOnly() throws {
        let clock = try JobClock(environment: [JobClock.fakeTimeVariable: "23:30"])
        #expect(clock.minuteOfDay() == 23 * 60 + 30)
        #expect(abs(clock.now() - (try JobClock(environment: [:])).now()) < 60)
    }

    @Test func aMalformedFakeTimeIsRefused() throws {
        #expect(throws: ServerError.self) { try JobClock(environment: [JobClock.fakeTimeVariable: "25:00"]) }
        #expect((0..<24 * 60).contains(try JobClock(environment: [:]).minuteOfDay()))
    }
}
