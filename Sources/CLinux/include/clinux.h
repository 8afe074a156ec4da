#ifndef LIFEBOAT_CLINUX_H
#define LIFEBOAT_CLINUX_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// Flags for lifeboat_openat2's `resolve` argument (values of linux/openat2.h).
#define LIFEBOAT_RESOLVE_NO_XDEV       0x01
#define LIFEBOAT_RESOLVE_NO_MAGICLINKS 0x02
#define LIFEBOAT_RESOLVE_NO_SYMLINKS   0x04
#define LIFEBOAT_RESOLVE_BENEATH       0x08

// Flags for lifeboat_renameat2.
#define LIFEBOAT_RENAME_NOREPLACE (1 << 0)
#define LIFEBOAT_RENAME_EXCHANGE  (1 << 1)

/// openat2(2): returns a file descriptor or -1 with errno set (ENOSYS on kernels before 5.6).
int lifeboat_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// renameat2(2): returns 0 or -1 with errno set.
int lifeboat_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// syncfs(2) on the filesystem holding fd.
int lifeboat_syncfs(int fd);

/// chmod(2) of the directory `name` in `dirfd`, never through a symbolic link (ELOOP or ENOTDIR
/// instead), whatever the directory's own mode: through an O_PATH descriptor of it and its
/// /proc/self/fd link. Returns 0 or -1 with errno set.
int lifeboat_chmod_directory_at(int dirfd, const char *name, mode_t mode);

/// The credentials of the peer of a connected Unix socket (SO_PEERCRED). Returns 0 or -1.
int lifeboat_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);

/// pidfd_open(2): a file descriptor that becomes readable when the process exits (Linux 5.3).
/// Returns -1 with errno set (ENOSYS on older kernels).
int lifeboat_pidfd_open(pid_t pid, unsigned int flags);

/// An open file description lock (fcntl F_OFD_SETLK) on `length` bytes from `start` (0: to the
/// end of any file), write (exclusive) or unlocked, never waiting: 0, or -1 with errno set (EAGAIN
/// when another open file description holds a lock there). Released on unlock or the last close.
int lifeboat_ofd_lock(int fd, int exclusive, int64_t start, int64_t length);

/// Whether another open file description holds a lock over `length` bytes from `start`
/// (F_OFD_GETLK): 1 with the first such lock's range, 0 when none, -1 with errno set.
int lifeboat_ofd_conflict(int fd, int64_t start, int64_t length, int64_t *held_start, int64_t *held_length);

/// pipe2(2) (a GNU extension Swift does not see): a pipe with flags such as O_CLOEXEC set atomically.
int lifeboat_pipe2(int fds[2], int flags);

/// posix_spawn_file_actions_addclosefrom_np(3) (glibc 2.34), looked up when first needed: the
/// spawned process gets no descriptor from `from` up, whatever the daemon left inheritable (a
/// listening socket a hook would otherwise keep alive after a crash). ENOSYS on an older glibc.
int lifeboat_spawn_close_from(void *actions, int from);

/// getdents64(2): fills `buffer` with `struct linux_dirent64` records of the directory open at
/// fd; returns the bytes filled (0 at the end) or -1 with errno set. Unlike fdopendir(3), it takes
/// no descriptor of its own (no dup, fstat or fcntl per directory).
long lifeboat_getdents64(int fd, void *buffer, unsigned long size);

/// Makes C's stdout (which Swift's `print` writes through) line-buffered whatever it is connected
/// to; Swift 6 cannot name the `stdout` global safely.
void lifeboat_line_buffer_stdout(void);

/// Caps glibc's malloc arenas at `arenas` unless MALLOC_ARENA_MAX is set (then glibc applies that
/// itself); returns the cap in force, or 0 when mallopt refused.
int lifeboat_limit_malloc_arenas(int arenas);

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit, as a daemon that never
/// calls select(2) may; returns the soft limit in force afterwards, or -1 with errno set.
long lifeboat_raise_open_files_limit(void);

/// Raises the niceness of every thread of the process to at least `niceness` (never lowers one:
/// a service manager's higher setting stands); threads started later inherit their creator's.
/// Returns the calling thread's niceness afterwards, or -100 with errno set when a thread's could
/// not be read or raised (a thread may raise another's only with no fewer capabilities).
/// Threads that hold CAP_SYS_NICE may lower theirs again: lifeboatd gives it up first.
int lifeboat_raise_niceness(int niceness);

/// Whether lifeboat_crc32 runs on carry-less multiplication (PCLMULQDQ) on this CPU; without it,
/// it goes bit by bit: call zlib's crc32 instead.
int lifeboat_crc32_accelerated(void);

/// gzip's CRC-32 of `len` bytes, continuing from `crc` (0 to start), as zlib's crc32 computes it.
uint32_t lifeboat_crc32(uint32_t crc, const void *data, size_t len);

#endif
