# Lists the existing users among the ones named on standard input. The
# wave rollout runs it with `manage.py shell -c`, sending JSON such as
# {"usernames": [...], "moa_attribute": "moa.code"}. It prints one line,
# "ROLLOUT-USERS " and a JSON list of each user's name, email, primary key
# and MOA. It works with any Django user model and reads the "default"
# database, the primary, because a replica may lag behind an import.
import json
import sys

from django.contrib.auth import get_user_model

request = json.load(sys.stdin)
user_model = get_user_model()
email_field = user_model.get_email_field_name()
attribute_path = [name for name in request.get("moa_attribute", "").split(".") if name]
lookup = {user_model.USERNAME_FIELD + "__in": request["usernames"]}

found = []
for user in user_model._default_manager.using("default").filter(**lookup):
    moa = None
    if attribute_path:
        moa = user
        for name in attribute_path:
            moa = getattr(moa, name, None)
    found.append(
        {
            "username": user.get_username(),
            "email": getattr(user, email_field, "") or "",
            "id": user.pk,
            "moa": None if moa is None else str(moa),
        }
    )
print("ROLLOUT-USERS " + json.dumps(sorted(found, key=lambda entry: entry["username"])))
