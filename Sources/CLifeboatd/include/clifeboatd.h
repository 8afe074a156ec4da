#ifndef LIFEBOAT_CLIFEBOATD_H
#define LIFEBOAT_CLIFEBOATD_H

/// What lifeboatd's constructor did with CAP_SYS_NICE, before the process's first thread started
/// (threads inherit their creator's capabilities): 0 dropped it, 1 it was not held, 2 the
/// constructor did not run, or minus the errno value when the kernel refused.
///
/// Without it no thread can lower its niceness: libdispatch, as root, sets each of its worker
/// threads' to an absolute value by QoS (-2 for user-initiated work such as GRDB's queues, and
/// -4 seen too), above an operator's shell; and a thread may raise another's niceness only when
/// its capabilities are no fewer, which holds when none has the privilege.
int lifeboatd_sys_nice_dropped(void);

#endif
