/* What a container may do: each line names a system call (with the arguments that matter)
 * and what it returned, "ok" or the errno's name. Built static by the security tests and
 * bind-mounted into a busybox container, so the same binary runs under both engines.
 *
 * Every call runs in a forked child, so one that succeeds (a new namespace, a mount, a
 * personality change) cannot change what the next one sees. Calls are chosen to be harmless
 * when they succeed: nothing here changes the host, the clock or the kernel's modules.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

typedef long (*probe_fn)(void);

/* Result of a call: 0 or -errno. */
static long rc(long r) { return r < 0 ? -errno : 0; }

static long p_unshare_mnt(void) { return rc(unshare(CLONE_NEWNS)); }
static long p_unshare_user(void) { return rc(unshare(CLONE_NEWUSER)); }
static long p_unshare_net(void) { return rc(unshare(CLONE_NEWNET)); }

static long clone_flags(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return -errno;
    waitpid((pid_t)pid, NULL, 0);
    return 0;
}
static long p_clone(void) { return clone_flags(0); }
static long p_clone_newuts(void) { return clone_flags(CLONE_NEWUTS); }
static long p_clone_newuser(void) { return clone_flags(CLONE_NEWUSER); }
/* A NULL clone_args of size 0 is EINVAL for a kernel that runs clone3 at all. */
static long p_clone3(void) { return rc(syscall(SYS_clone3, NULL, 0)); }

static long p_mount_tmpfs(void) {
    mkdir("/tmp/probe-mnt", 0755);
    long r = rc(mount("probe", "/tmp/probe-mnt", "tmpfs", 0, NULL));
    if (r == 0)
        umount2("/tmp/probe-mnt", MNT_DETACH);
    rmdir("/tmp/probe-mnt");
    return r;
}
static long p_umount2(void) { return rc(umount2("/probe-not-a-mount", 0)); }
static long p_mknod_chr(void) {
    long r = rc(mknod("/tmp/probe-null", S_IFCHR | 0600, makedev(1, 3)));
    unlink("/tmp/probe-null");
    return r;
}
static long p_mknod_fifo(void) {
    long r = rc(mknod("/tmp/probe-fifo", S_IFIFO | 0600, 0));
    unlink("/tmp/probe-fifo");
    return r;
}
/* KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING */
static long p_keyctl(void) { return rc(syscall(SYS_keyctl, 0, -3, 0)); }
/* add_key("user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING) */
static long p_add_key(void) { return rc(syscall(SYS_add_key, "user", "probe", "x", 1, -2)); }
static long p_request_key(void) { return rc(syscall(SYS_request_key, "user", "probe-none", NULL, 0)); }
/* BPF_MAP_CREATE with no attributes: EFAULT for a caller the kernel lets in */
static long p_bpf(void) { return rc(syscall(SYS_bpf, 0, NULL, 0)); }
static long p_ptrace(void) { return rc(ptrace(PTRACE_TRACEME, 0, NULL, NULL)); }
static long p_personality_query(void) { return rc(personality(0xffffffff)); }
static long p_personality_linux32(void) { return rc(personality(PER_LINUX32)); }
static long p_personality_norandom(void) { return rc(personality(ADDR_NO_RANDOMIZE)); }
static long p_chroot(void) { return rc(chroot("/")); }
static long p_setns(void) { return rc(setns(-1, 0)); }
static long p_open_by_handle_at(void) { return rc(syscall(SYS_open_by_handle_at, -1, NULL, 0)); }
static long p_perf_event_open(void) { return rc(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)); }
/* SYSLOG_ACTION_SIZE_BUFFER */
static long p_syslog(void) { return rc(syscall(SYS_syslog, 10, NULL, 0)); }
static long p_userfaultfd(void) { return rc(syscall(SYS_userfaultfd, 0)); }
static long p_io_uring_setup(void) { return rc(syscall(SYS_io_uring_setup, 0, NULL)); }
static long p_kcmp(void) { return rc(syscall(SYS_kcmp, getpid(), getpid(), 0, 0, 0)); }
static long p_process_vm_readv(void) { return rc(syscall(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 0)); }
/* CLOCK_MONOTONIC cannot be set: EINVAL for a caller the filter lets through */
static long p_clock_settime(void) {
    struct timespec ts = {0, 0};
    return rc(syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts));
}
static long p_sethostname(void) {
    char name[256] = {0};
    gethostname(name, sizeof name - 1);
    return rc(sethostname(name, strlen(name)));
}
/* MPOL_DEFAULT */
static long p_set_mempolicy(void) { return rc(syscall(SYS_set_mempolicy, 0, NULL, 0)); }
static long p_socket_audit(void) { return rc(socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)); }
/* Newer than any name in Docker 20.10's profile (runc answers those with ENOSYS). */
static long p_fchmodat2(void) { return rc(syscall(SYS_fchmodat2, AT_FDCWD, "/tmp", 01777, 0)); }
static long p_mseal(void) { return rc(syscall(SYS_mseal, 0, 0, 0)); }
static long p_nosuchsyscall(void) { return rc(syscall(1000)); }
static long p_getpid(void) { return rc(getpid()); }

static const struct {
    const char *name;
    probe_fn fn;
} probes[] = {
    {"getpid", p_getpid},
    {"unshare(CLONE_NEWNS)", p_unshare_mnt},
    {"unshare(CLONE_NEWUSER)", p_unshare_user},
    {"unshare(CLONE_NEWNET)", p_unshare_net},
    {"clone(SIGCHLD)", p_clone},
    {"clone(CLONE_NEWUTS)", p_clone_newuts},
    {"clone(CLONE_NEWUSER)", p_clone_newuser},
    {"clone3(NULL, 0)", p_clone3},
    {"mount(tmpfs)", p_mount_tmpfs},
    {"umount2", p_umount2},
    {"mknod(c 1:3)", p_mknod_chr},
    {"mknod(fifo)", p_mknod_fifo},
    {"keyctl(GET_KEYRING_ID)", p_keyctl},
    {"add_key", p_add_key},
    {"request_key", p_request_key},
    {"bpf(MAP_CREATE, NULL)", p_bpf},
    {"ptrace(TRACEME)", p_ptrace},
    {"personality(query)", p_personality_query},
    {"personality(PER_LINUX32)", p_personality_linux32},
    {"personality(ADDR_NO_RANDOMIZE)", p_personality_norandom},
    {"chroot", p_chroot},
    {"setns(-1)", p_setns},
    {"open_by_handle_at(-1)", p_open_by_handle_at},
    {"perf_event_open(NULL)", p_perf_event_open},
    {"syslog(SIZE_BUFFER)", p_syslog},
    {"userfaultfd", p_userfaultfd},
    {"io_uring_setup(0, NULL)", p_io_uring_setup},
    {"kcmp(self)", p_kcmp},
    {"process_vm_readv(self)", p_process_vm_readv},
    {"clock_settime(MONOTONIC)", p_clock_settime},
    {"sethostname(same)", p_sethostname},
    {"set_mempolicy(DEFAULT)", p_set_mempolicy},
    {"socket(NETLINK_AUDIT)", p_socket_audit},
    {"fchmodat2", p_fchmodat2},
    {"mseal", p_mseal},
    {"syscall(1000)", p_nosuchsyscall},
};

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0)
            _exit((int)-probes[i].fn());
        int status = 0;
        if (waitpid(pid, &status, 0) < 0) {
            perror("waitpid");
            return 1;
        }
        if (!WIFEXITED(status)) {
            printf("%s: killed by signal %d\n", probes[i].name, WTERMSIG(status));
            continue;
        }
        int err = WEXITSTATUS(status);
        const char *name = err ? strerrorname_np(err) : NULL;
        printf("%s: %s\n", probes[i].name, err ? (name ? name : "?") : "ok");
    }
    return 0;
}
