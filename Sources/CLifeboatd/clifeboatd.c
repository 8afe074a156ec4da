#include "clifeboatd.h"
#include <errno.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Until the constructor runs: 2.
static int outcome = 2;

__attribute__((constructor)) static void lifeboatd_drop_sys_nice(void) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &header, data) != 0) {
        outcome = -errno;
        return;
    }
    const unsigned int word = CAP_SYS_NICE / 32, bit = 1u << (CAP_SYS_NICE % 32);
    if (!((data[word].effective | data[word].permitted | data[word].inheritable) & bit)) {
        outcome = 1;
        return;
    }
    data[word].effective &= ~bit;
    data[word].permitted &= ~bit;
    data[word].inheritable &= ~bit;
    outcome = syscall(SYS_capset, &header, data) == 0 ? 0 : -errno;
}

int lifeboatd_sys_nice_dropped(void) {
    return outcome;
}
