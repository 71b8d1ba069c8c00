package crowdload

import "syscall"

// childAttr makes a child die with the harness (SIGKILL when the harness's
// thread that started it exits), so an interrupted run leaves no
// redis-server or gateway behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
