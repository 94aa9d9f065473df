"""A real single-node Kafka (KRaft) on 127.0.0.1, built from Maven Central jars.

`vigie kafka start|stop|status|reset` drive it. The jars are gathered once by Maven into
`deploy/kafka/libs/` (kept between runs); the broker's data, logs and pid file live in the
project's state folder (`.state/kafka/` by default), so nothing outside the project is
touched. Start and stop are idempotent: a second start finds the running broker, a stop
with no broker is not an error.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import string
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import env_int, env_str, project_root

DEPLOY_DIR = project_root() / "deploy" / "kafka"


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never beginning with "-".

    One id in 64 would begin with "-" and be taken for a flag on a command line (a
    fresh-clone CI run failed so); Kafka's own generator redraws those too.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaLocalError(RuntimeError):
    """The local broker could not be prepared, started or stopped."""


@dataclass(frozen=True)
class LocalKafka:
    port: int
    controller_port: int
    state_dir: Path
    heap: str = "1g"

    @classmethod
    def from_env(cls) -> LocalKafka:
        default_state = project_root() / ".state" / "kafka"
        return cls(
            port=env_int("VIGIE_KAFKA_PORT", 9092, minimum=1),
            controller_port=env_int("VIGIE_KAFKA_CONTROLLER_PORT", 9093, minimum=1),
            state_dir=Path(env_str("VIGIE_KAFKA_STATE_DIR", str(default_state))),
            heap=env_str("VIGIE_KAFKA_HEAP", cls.heap),
        )

    @property
    def libs_dir(self) -> Path:
        return DEPLOY_DIR / "libs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- preparation -------------------------------------------------------------------

    def ensure_jars(self) -> None:
        """Gather the broker's jars with Maven unless an earlier run already did."""
        marker = self.libs_dir / ".complete"
        pom = DEPLOY_DIR / "pom.xml"
        if marker.exists() and marker.read_text() == pom.read_text():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaLocalError("Maven (mvn) is not installed; it gathers the Kafka jars")
        if self.libs_dir.exists():
            shutil.rmtree(self.libs_dir)
        command = [
            mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={self.libs_dir}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise KafkaLocalError(
                "Maven could not gather the Kafka jars:\n" + (result.stdout + result.stderr)[-3000:]
            )
        marker.write_text(pom.read_text())

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").exists():
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if java is None:
            raise KafkaLocalError("Java 17+ is not installed (java not on PATH, no JAVA_HOME)")
        return java

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        return [
            self._java(),
            f"-Xmx{self.heap}", f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp", str(self.libs_dir / "*"),
            main_class, *args,
        ]

    def write_properties(self) -> Path:
        template = string.Template((DEPLOY_DIR / "server.properties.template").read_text())
        text = template.substitute(
            port=self.port, controller_port=self.controller_port, data_dir=self.data_dir
        )
        path = self.state_dir / "server.properties"
        path.write_text(text)
        return path

    def format_storage(self, properties: Path) -> None:
        """Format the KRaft storage once; the cluster id is kept with the data."""
        id_file = self.cluster_id_file
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        cluster_id = id_file.read_text().strip()
        # "--cluster-id=ID" in one word: an id kept from an older run may begin with "-",
        # which the tool's argument parser would otherwise read as a flag.
        command = self._java_command(
            "kafka.tools.StorageTool", "format", "--standalone", "--ignore-formatted",
            f"--cluster-id={cluster_id}", "-c", str(properties),
        )
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise KafkaLocalError(
                "formatting the Kafka storage failed:\n" + (result.stdout + result.stderr)[-3000:]
            )

    # -- process control ---------------------------------------------------------------

    def running_pid(self) -> int | None:
        """The pid of our broker if it is alive, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return None
        except PermissionError:
            return pid
        # A recycled pid that is not java is not our broker. (An empty command line is a
        # process in the middle of exec: the java launcher re-executes itself at start.)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        if cmdline and b"kafka.Kafka" not in cmdline:
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def port_open(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def answers(self, timeout_s: float = 5.0) -> bool:
        """True when the broker answers a metadata request (not just an open port)."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                request_timeout_ms=int(timeout_s * 1000),
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def start(self, wait_s: float = 90.0) -> tuple[int, bool]:
        """Start the broker unless it runs; returns (pid, started_now)."""
        pid = self.running_pid()
        if pid is not None:
            if not self.wait_until_ready(pid, wait_s):
                raise KafkaLocalError(self._not_ready_message(pid))
            return pid, False
        if self.port_open():
            raise KafkaLocalError(
                f"port {self.port} is already taken by another process that is not this "
                f"project's broker; stop it or set VIGIE_KAFKA_PORT"
            )
        self.ensure_jars()
        for folder in (self.state_dir, self.data_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        properties = self.write_properties()
        self.format_storage(properties)
        with open(self.stdout_file, "ab") as out:
            process = subprocess.Popen(
                self._java_command("kafka.Kafka", str(properties)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the shell that started it
            )
        self.pid_file.write_text(str(process.pid))
        if not self.wait_until_ready(process.pid, wait_s):
            raise KafkaLocalError(self._not_ready_message(process.pid))
        return process.pid, True

    def wait_until_ready(self, pid: int, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.running_pid() != pid:
                return False
            if self.port_open() and self.answers(timeout_s=3.0):
                return True
            time.sleep(0.5)
        return False

    def _not_ready_message(self, pid: int) -> str:
        state = "is running but does not answer" if self.running_pid() == pid else "exited"
        tail = ""
        for path in (self.stdout_file, self.log_file):
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-15:]
                tail += f"\n--- last lines of {path} ---\n" + "\n".join(lines)
        return (
            f"the Kafka broker (pid {pid}) {state} on {self.bootstrap}. "
            f"Its log: {self.log_file} (console output: {self.stdout_file}){tail}"
        )

    def stop(self, wait_s: float = 30.0) -> int | None:
        """Stop the broker if it runs; returns the pid that was stopped, or None."""
        pid = self.running_pid()
        if pid is None:
            return None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return pid

    @property
    def cluster_id_file(self) -> Path:
        return self.state_dir / "cluster.id"

    def reset(self, wait_s: float = 30.0) -> int | None:
        """Stop the broker and forget everything it held: its topics, records, consumer
        groups and cluster id (its logs stay). The next start formats a new, empty cluster.
        For a developer's broker that no longer starts, e.g. one that ran out of open files
        under the partitions of many test runs. Returns the pid stopped, or None."""
        pid = self.stop(wait_s)
        # A broker of this state folder whose pid file was lost still writes to the data.
        if self._brokers_using_state():
            raise KafkaLocalError(
                f"a Kafka broker still runs on {self.state_dir} (pid file missing); stop it "
                f"before resetting: pids {', '.join(map(str, self._brokers_using_state()))}"
            )
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.cluster_id_file.unlink(missing_ok=True)
        return pid

    def _brokers_using_state(self) -> list[int]:
        """Live broker processes started with this state folder's server.properties."""
        properties = str(self.state_dir / "server.properties").encode()
        pids = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if b"kafka.Kafka" in args and properties in args:
                pid = int(cmdline.parent.name)
                if _alive(pid):
                    pids.append(pid)
        return pids


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child (tests start the broker in-process).
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return True
    return status != "Z"
