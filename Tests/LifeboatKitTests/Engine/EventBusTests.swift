import Foundation
import Testing
@testable import LifeboatKit

@Suite struct EventBusTests {
    private static func job(_ id: Int64, _ state: JobState) -> RunEvent {
        var job = JobRecord(runId: "r", site: "site\(id)", product: "jira", wave: 0, priority: 0, productOrder: 0, destination: "/d/site\(id)")
        job.id = id
        job.state = state
        return RunEvent(kind: .job, runId: "r", at: Date(), job: job)
    }

    private static func names(_ events: [RunEvent]) -> [String] {
        events.map { event in event.job.map { "\($0.site):\($0.state.rawValue)" } ?? event.kind.rawValue }
    }

    @Test func aWatcherGetsEachJobsLatestEventInOrderAndEndsWithTheRun() async throws {
        let bus = EventBus()
        let batches = bus.watch(runId: "r")
        bus.publish(Self.job(1, .restoring))
        bus.publish(Self.job(2, .restoring))
        bus.publish(RunEvent(kind: .job, runId: "other", at: Date(), job: Self.job(3, .failed).job))
        bus.publish(Self.job(1, .succeeded))
        bus.publish(RunEvent(kind: .run, runId: "r", at: Date(), message: "wave 2 of 2"))
        var progress = Self.job(2, .restoring)
        progress.kind = .progress
        progress.archiveBytesRead = 10
        bus.publish(progress)
        var iterator = batches.makeAsyncIterator()
        let first = try #require(await iterator.next())
        // Job 1's restoring gave way to its success, in the success's place; job 2 is its latest.
        #expect(Self.names(first) == ["site1:succeeded", "run", "site2:restoring"])
        #expect(first.last?.archiveBytesRead == 10)

        bus.publish(Self.job(2, .failed))
        bus.publish(RunEvent(kind: .finished, runId: "r", at: Date()))
        bus.publish(Self.job(4, .succeeded))
        #expect(Self.names(try #require(await iterator.next())) == ["site2:failed", "finished"])
        #expect(await iterator.next() == nil)
        #expect(bus.subscriberCount == 0)
    }

    @Test func aSlowWatcherLosesNoJobsFinalStateWhereAStreamDropsTheOldest() async throws {
        let bus = EventBus(bufferSize: 100)
        let batches = bus.watch(runId: "r")
        let stream = bus.subscribe(runId: "r")
        for id in Int64(1)...5_000 {
            bus.publish(Self.job(id, .restoring))
            bus.publish(Self.job(id, .committing))
            bus.publish(Self.job(id, .succeeded))
        }
        bus.publish(RunEvent(kind: .finished, runId: "r", at: Date()))
        var watched: [RunEvent] = []
        for await batch in batches { watched += batch }
        #expect(watched.count == 5_001)
        #expect(watched.dropLast().allSatisfy { $0.job?.state == .succeeded })
        #expect(Set(watched.compactMap(\.job?.id)).count == 5_000)
        var streamed = 0
        for await _ in stream { streamed += 1 }
        #expect(streamed == 100)
    }

    @Test func aRunsEndEndsItsSubscribersOnly() async throws {
        let bus = EventBus()
        let everything = bus.subscribe()
        let one = bus.subscribe(runId: "r")
        bus.publish(RunEvent(kind: .finished, runId: "r", at: Date()))
        bus.publish(RunEvent(kind: .job, runId: "next", at: Date(), job: Self.job(1, .succeeded).job))
        bus.publish(RunEvent(kind: .finished, runId: "next", at: Date()))
        var iterator = everything.makeAsyncIterator()
        #expect(await iterator.next()?.kind == .finished)
        #expect(await iterator.next()?.runId == "next")
        #expect(await iterator.next()?.kind == .finished)
        #expect(bus.subscriberCount == 1)
        var ended = 0
        for await _ in one { ended += 1 }
        #expect(ended == 1)
    }

    /// A watcher's pause between batches (its pace) ends when the run does: a run's last batch
    /// is not held back. A minute's pause must end within 30 s: one that is not cut short fails.
    @Test func aWatchersPauseEndsWithTheRun() async throws {
        let bus = EventBus()
        let batches = bus.watch(runId: "r")
        bus.publish(Self.job(1, .restoring))
        let start = ContinuousClock.now
        let paused = Task { await batches.pause(.seconds(60)) }
        try await Task.sleep(for: .milliseconds(30))
        bus.publish(RunEvent(kind: .finished, runId: "other", at: Date()))
        bus.publish(Self.job(1, .succeeded))
        try await Task.sleep(for: .milliseconds(30))
        bus.publish(RunEvent(kind: .finished, runId: "r", at: Date()))
        await paused.value
        #expect(ContinuousClock.now - start < .seconds(30))
        var iterator = batches.makeAsyncIterator()
        #expect(Self.names(try #require(await iterator.next())) == ["site1:succeeded", "finished"])
        // A pause that starts after the end does not wait either.
        #expect(await { let s = ContinuousClock.now; await batches.pause(.seconds(60)); return ContinuousClock.now - s }() < .seconds(30))
    }

    @Test func aWatcherThatLeavesIsForgotten() async throws {
        let bus = EventBus()
        let task = Task {
            for await _ in bus.watch(runId: "r") {}
        }
        try await waitUntil { bus.subscriberCount == 1 }
        task.cancel()
        await task.value
        #expect(bus.subscriberCount == 0)
    }
}
