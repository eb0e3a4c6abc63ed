"""The import_users command: all-or-nothing CSV import with welcome emails."""

import tempfile
from io import StringIO
from pathlib import Path
from unittest import mock

from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

from redis.exceptions import ResponseError

from bmms_reference.core.models import Moa, User
from bmms_reference.core.queueing import delay_with_retry

HEADER = "username,email,first_name,last_name,moa\n"
THREE_USERS = HEADER + (
    "amina,amina@example.gov.ph,Amina,Saupi,mafar\n"
    "datu,datu@example.gov.ph,Datu,Ali,mafar\n"
    "norhaya,norhaya@example.gov.ph,Norhaya,Guro,mafar\n"
)


class ImportUsersTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.moa = Moa.objects.create(code="mafar", name="Ministry of Agriculture, Fisheries and Agrarian Reform")
        Moa.objects.create(code="mbhte", name="Ministry of Basic, Higher and Technical Education")

    def write_csv(self, text):
        handle = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8")
        handle.write(text)
        handle.close()
        self.addCleanup(Path(handle.name).unlink)
        return handle.name

    def run_import(self, text, moa="mafar"):
        output = StringIO()
        with self.captureOnCommitCallbacks(execute=True):
            call_command("import_users", moa, self.write_csv(text), stdout=output)
        return output.getvalue()

    def import_error(self, text, moa="mafar"):
        with self.assertRaises(CommandError) as caught:
            self.run_import(text, moa)
        return str(caught.exception)

    def test_import_creates_three_users(self):
        output = self.run_import(THREE_USERS)
        self.assertIn("created 3, updated 0, unchanged 0", output)
        self.assertEqual(User.objects.filter(moa=self.moa).count(), 3)

    def test_import_sends_one_welcome_email_each(self):
        self.run_import(THREE_USERS)
        self.assertEqual(sorted(message.to[0] for message in mail.outbox),
                         ["amina@example.gov.ph", "datu@example.gov.ph", "norhaya@example.gov.ph"])
        self.assertTrue(all(message.subject == "Welcome to BMMS" for message in mail.outbox))

    def test_rerun_changes_nothing(self):
        self.run_import(THREE_USERS)
        mail.outbox.clear()
        output = self.run_import(THREE_USERS)
        self.assertIn("created 0, updated 0, unchanged 3", output)
        self.assertEqual(User.objects.count(), 3)
        self.assertEqual(mail.outbox, [])

    def test_changed_name_updates_without_email(self):
        self.run_import(THREE_USERS)
        mail.outbox.clear()
        output = self.run_import(THREE_USERS.replace("Datu,Ali", "Datu,Alonto"))
        self.assertIn("created 0, updated 1, unchanged 2", output)
        self.assertEqual(User.objects.get(username="datu").last_name, "Alonto")
        self.assertEqual(mail.outbox, [])

    def test_malformed_email_rejected_with_line(self):
        text = THREE_USERS.replace("datu@example.gov.ph", "datu-at-example.gov.ph")
        message = self.import_error(text)
        self.assertIn("line 3: email 'datu-at-example.gov.ph' is not a valid email address", message)
        self.assertIn("nothing imported", message)

    def test_unknown_moa_rejected_with_line(self):
        message = self.import_error(THREE_USERS.replace("Guro,mafar", "Guro,mxyz"))
        self.assertIn("line 4: MOA 'mxyz' is unknown", message)

    def test_bad_row_imports_nothing(self):
        text = THREE_USERS.replace("Guro,mafar", "Guro,mxyz").replace("datu@", "datu@@")
        message = self.import_error(text)
        self.assertIn("2 problem(s)", message)
        self.assertEqual(User.objects.count(), 0)
        self.assertEqual(mail.outbox, [])

    def test_problems_listed_in_line_order(self):
        text = THREE_USERS.replace("Guro,mafar", "Guro,mxyz").replace("amina@example", "amina@")
        lines = self.import_error(text).splitlines()[1:]
        self.assertEqual([line.split(":")[0] for line in lines], ["line 2", "line 4"])

    def test_row_of_other_moa_rejected(self):
        message = self.import_error(THREE_USERS.replace("Ali,mafar", "Ali,mbhte"))
        self.assertIn("line 3: MOA 'mbhte' differs from the MOA being imported, 'mafar'", message)

    def test_repeated_username_rejected(self):
        text = THREE_USERS + "amina,other@example.gov.ph,Amina,Other,mafar\n"
        message = self.import_error(text)
        self.assertIn("line 5: username 'amina' repeats line 2", message)

    def test_user_of_other_moa_rejected(self):
        User.objects.create(username="datu", email="datu@example.gov.ph", moa=Moa.objects.get(code="mbhte"))
        message = self.import_error(THREE_USERS)
        self.assertIn("line 3: user 'datu' already exists in another MOA", message)

    def test_email_of_other_user_rejected(self):
        User.objects.create(username="someone", email="Amina@example.gov.ph", moa=self.moa)
        message = self.import_error(THREE_USERS)
        self.assertIn("line 2: email 'amina@example.gov.ph' already belongs to user 'someone'", message)

    def test_missing_column_rejected(self):
        message = self.import_error("username,email,moa\namina,amina@example.gov.ph,mafar\n")
        self.assertIn("line 1: missing column(s) first_name, last_name", message)

    def test_unknown_target_moa_rejected(self):
        message = self.import_error(THREE_USERS, moa="nope")
        self.assertIn("MOA 'nope' not found", message)

    def test_dry_run_writes_nothing(self):
        output = StringIO()
        call_command("import_users", "mafar", self.write_csv(THREE_USERS), "--dry-run", stdout=output)
        self.assertIn("3 row(s) valid", output.getvalue())
        self.assertEqual(User.objects.count(), 0)


class QueueingTests(TestCase):
    def test_noreplicas_reply_retried(self):
        task = mock.Mock(name="task")
        task.delay.side_effect = [ResponseError("NOREPLICAS Not enough good replicas to write."), "queued"]
        with mock.patch("bmms_reference.core.queueing.time.sleep"):
            self.assertEqual(delay_with_retry(task, 7), "queued")
        self.assertEqual(task.delay.call_count, 2)

    def test_other_reply_raised_at_once(self):
        task = mock.Mock(name="task")
        task.delay.side_effect = ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
        with self.assertRaises(ResponseError):
            delay_with_retry(task, 7)
        self.assertEqual(task.delay.call_count, 1)

    def test_retries_stop_at_deadline(self):
        task = mock.Mock(name="task")
        task.delay.side_effect = ResponseError("READONLY You can't write against a read only replica.")
        with mock.patch("bmms_reference.core.queueing.time.sleep"), \
                mock.patch("bmms_reference.core.queueing.time.monotonic", side_effect=[0.0, 10.0, 31.0]):
            with self.assertRaises(ResponseError):
                delay_with_retry(task, 7)
        self.assertEqual(task.delay.call_count, 2)
