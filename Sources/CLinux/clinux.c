#define _GNU_SOURCE
#include "clinux.h"
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct lifeboat_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int lifeboat_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct lifeboat_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int lifeboat_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int lifeboat_syncfs(int fd) {
    return syncfs(fd);
}

int lifeboat_chmod_directory_at(int dirfd, const char *name, mode_t mode) {
    int handle = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (handle < 0) return -1;
    char link[32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", handle);
    int rc = chmod(link, mode);
    int saved = errno;
    close(handle);
    errno = saved;
    return rc;
}

int lifeboat_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int lifeboat_pidfd_open(pid_t pid, unsigned int flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

long lifeboat_getdents64(int fd, void *buffer, unsigned long size) {
    return syscall(SYS_getdents64, fd, buffer, size);
}

int lifeboat_ofd_lock(int fd, int exclusive, int64_t start, int64_t length) {
    struct flock lock = { .l_type = exclusive ? F_WRLCK : F_UNLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = length, .l_pid = 0 };
    return fcntl(fd, F_OFD_SETLK, &lock);
}

int lifeboat_ofd_conflict(int fd, int64_t start, int64_t length, int64_t *held_start, int64_t *held_length) {
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = length, .l_pid = 0 };
    if (fcntl(fd, F_OFD_GETLK, &lock) != 0) return -1;
    if (lock.l_type == F_UNLCK) return 0;
    *held_start = lock.l_start;
    *held_length = lock.l_len;
    return 1;
}

int lifeboat_pipe2(int fds[2], int flags) {
    return pipe2(fds, flags);
}

int lifeboat_spawn_close_from(void *actions, int from) {
    typedef int (*close_from)(void *, int);
    static close_from found;
    static int looked;
    if (!looked) {
        found = (close_from)dlsym(RTLD_DEFAULT, "posix_spawn_file_actions_addclosefrom_np");
        looked = 1;
    }
    return found ? found(actions, from) : ENOSYS;
}

void lifeboat_line_buffer_stdout(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

int lifeboat_limit_malloc_arenas(int arenas) {
    const char *set = getenv("MALLOC_ARENA_MAX");
    if (set && *set) return atoi(set);
    return mallopt(M_ARENA_MAX, arenas) == 1 ? arenas : 0;
}

long lifeboat_raise_open_files_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    if (limit.rlim_cur < limit.rlim_max) {
        rlim_t wanted = limit.rlim_max;
        limit.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    }
    return limit.rlim_cur == RLIM_INFINITY ? (long)0x7fffffff : (long)limit.rlim_cur;
}

int lifeboat_raise_niceness(int niceness) {
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return -100;
    int failure = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks))) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        id_t tid = (id_t)strtoul(entry->d_name, NULL, 10);
        errno = 0;
        int current = getpriority(PRIO_PROCESS, tid);
        if (current == -1 && errno != 0) {
            if (errno != ESRCH) failure = errno; // ESRCH: the thread ended meanwhile.
            continue;
        }
        if (current < niceness && setpriority(PRIO_PROCESS, tid, niceness) != 0 && errno != ESRCH) failure = errno;
    }
    closedir(tasks);
    if (failure) {
        errno = failure;
        return -100;
    }
    errno = 0;
    int now = getpriority(PRIO_PROCESS, 0);
    return (now == -1 && errno != 0) ? -100 : now;
}
