"""Prints, as JSON, Authorization values made by the botocore recipe (docs/recipes.md) for the
credentials in the environment: `valid`, and `other_action` (a correctly signed request
for another STS action, which the broker must refuse)."""

import base64
import importlib.util
import json
import sys

recipe_path, server_id, sts_url = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("recipe", recipe_path)
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)

valid = recipe.aws_iam_authorization(server_id, sts_url=sts_url)

# The same recipe with another action in the body.
recipe.GET_CALLER_IDENTITY = "Action=GetSessionToken&Version=2011-06-15"
other = recipe.aws_iam_authorization(server_id, sts_url=sts_url)

print(json.dumps({"valid": valid, "other_action": other}))
