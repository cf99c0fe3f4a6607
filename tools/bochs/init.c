/* /init of the Bochs test machine (tools/bochs/run.sh): mounts the pseudo file systems,
   runs /run/0/prog, /run/1/prog, ... in order, each with the NUL-separated arguments in
   its args file, prints each exit status and then one final marker carrying the first
   failure (0 when all passed), and powers the machine off. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* The status of one program (128 + signal when killed), or 127 when it cannot start. */
static int run(int n) {
    static char buf[1 << 16];
    char path[64], *argv[1024];
    int argc = 0;
    snprintf(path, sizeof path, "/run/%d/prog", n);
    argv[argc++] = strdup(path);
    snprintf(path, sizeof path, "/run/%d/args", n);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        for (char *p = buf; len > 0 && p < buf + len && argc < 1023; p += strlen(p) + 1) argv[argc++] = p;
    }
    argv[argc] = NULL;
    char *envp[] = {"PATH=/", "HOME=/tmp", "TERM=dumb", "RUST_BACKTRACE=1", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        chdir("/tmp");
        execve(argv[0], argv, envp);
        perror("execve");
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 125;
}

int main(void) {
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
    int fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
        if (fd > 2) close(fd);
    }
    int first_failure = 0;
    char path[64];
    struct stat sb;
    for (int n = 0; snprintf(path, sizeof path, "/run/%d/prog", n), stat(path, &sb) == 0; n++) {
        printf("\n@@BOCHS-RUN-START@@ %d\n", n);
        fflush(stdout);
        int status = run(n);
        printf("\n@@BOCHS-RUN-STATUS@@ %d %d\n", n, status);
        if (status != 0 && first_failure == 0) first_failure = status;
    }
    printf("\n@@BOCHS-RUN-EXIT@@ %d\n", first_failure);
    fflush(stdout);
    tcdrain(1); /* the serial port is slow: let the output out before powering off */
    usleep(300000);
    sync();
    reboot(RB_POWER_OFF);
    for (;;) pause();
}
