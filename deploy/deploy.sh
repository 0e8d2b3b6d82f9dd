#!/usr/bin/env bash
# Deploy Kapsule to one Google Cloud project: buckets, Firestore, images, service accounts, secrets,
# the Cloud Run Job (one execution per upload) and the API service. Safe to run again: what exists
# is kept (and the job/service are updated to the new images).
#
#   deploy/deploy.sh --project my-project [--region us-central1] [--dry-run]
#
# --dry-run prints every command (gcloud, and the python3 helpers' outputs) without running any;
# secret values are never printed. Only the organisation policies are read, even in a dry run (a
# read changes nothing): where they forbid public access, delivery is by signed URL and the service
# is IAM-authenticated (KAPSULE_PUBLIC_ACCESS=auto|public|private, KAPSULE_INVOKERS). Every setting below can be overridden from the environment.
# Idempotent: a second run keeps what exists, re-applies bindings and settings, adds no secret
# version that is already there and reports an index that exists instead of failing on it.
# See deploy/README.md for what each step is for and the roles each service account gets.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

DRY_RUN=0
PROJECT="${KAPSULE_PROJECT:-}"
REGION="${KAPSULE_REGION:-us-central1}"
while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --project) PROJECT="$2"; shift ;;
    --project=*) PROJECT="${1#*=}" ;;
    --region) REGION="$2"; shift ;;
    --region=*) REGION="${1#*=}" ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "deploy.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "$PROJECT" ]]; then
  echo "deploy.sh: say which project: --project PROJECT_ID (or KAPSULE_PROJECT)" >&2
  exit 2
fi

PRIVATE_BUCKET="${KAPSULE_PRIVATE_BUCKET:-$PROJECT-kapsule-private}"
DELIVERY_BUCKET="${KAPSULE_DELIVERY_BUCKET:-$PROJECT-kapsule-videos}"
UPLOAD_TTL_DAYS="${KAPSULE_UPLOAD_TTL_DAYS:-7}"   # uploads/ objects are deleted after this many days
COLLECTION="${KAPSULE_COLLECTION:-jobs}"
AR_REPO="${KAPSULE_AR_REPO:-kapsule}"
JOB="${KAPSULE_JOB_NAME:-kapsule-job}"
SERVICE="${KAPSULE_SERVICE_NAME:-kapsule-api}"
JOB_TIMEOUT_S="${KAPSULE_JOB_TIMEOUT_S:-3600}"
JOB_MAX_RETRIES="${KAPSULE_JOB_MAX_RETRIES:-2}"   # --max-retries AND the job's env: one setting
# Where Vertex AI serves each model (neither is the Cloud Run region): Veo only in the regions Google
# documents for it (docs/cloud-settings.md); Gemini on the global endpoint, the only one serving the
# Gemini previews. KAPSULE_VERTEX_LOCATION, the one setting for both before, still sets Veo's.
VEO_LOCATION="${KAPSULE_VEO_LOCATION:-${KAPSULE_VERTEX_LOCATION:-us-central1}}"
GEMINI_LOCATION="${KAPSULE_GEMINI_LOCATION:-global}"
STUDIO_ORIGINS="${KAPSULE_STUDIO_ORIGINS:-}"      # extra browser origins that upload (comma list)
# Public access (an allUsers reader on the delivery bucket, an unauthenticated service): "auto" reads
# the organisation policies that forbid it (domain restricted sharing, public access prevention) and
# falls back to private when either is enforced; "public" or "private" decides without reading.
PUBLIC_ACCESS="${KAPSULE_PUBLIC_ACCESS:-auto}"
INVOKERS="${KAPSULE_INVOKERS:-}"                   # private: members given roles/run.invoker (comma list)
PROXY_PORT="${KAPSULE_PROXY_PORT:-8080}"           # private: `gcloud run services proxy` serves the studio here
IAM_ATTEMPTS="${KAPSULE_IAM_ATTEMPTS:-6}"         # IAM calls retried on propagation delay
IAM_BACKOFF_S="${KAPSULE_IAM_BACKOFF_S:-10}"
JOB_MEMORY="${KAPSULE_JOB_MEMORY:-4Gi}"
JOB_CPU="${KAPSULE_JOB_CPU:-2}"
# Google's replacement for veo-3.0-generate-001, which Google retired on Vertex AI on 2026-06-30 (a
# retired id answers 404, and Kapsule refuses it at submission): see video_models.py's lifecycle
# column and docs/cloud-settings.md. A third party (litellm) also dates this id 2026-11-17; Google's
# pages still list it, so `kapsule doctor` only notes it: if Veo answers 404, set KAPSULE_VIDEO_MODEL.
VIDEO_MODEL="${KAPSULE_VIDEO_MODEL:-veo-3.1-generate-001}"
# No default: Gemini ids retire (gemini-2.5-flash's Vertex retirement date was 2026-06-17), and a
# retired id answers 404. Name a current one (docs/cloud-settings.md), or "local".
PROMPT_MODEL="${KAPSULE_PROMPT_MODEL:-}"
TAG="${KAPSULE_IMAGE_TAG:-$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || date +%Y%m%d%H%M%S)}"

API_SA="kapsule-api@$PROJECT.iam.gserviceaccount.com"
JOB_SA="kapsule-job@$PROJECT.iam.gserviceaccount.com"
BUILD_SA="kapsule-build@$PROJECT.iam.gserviceaccount.com"
BUILD_BUCKET="${KAPSULE_BUILD_BUCKET:-$PROJECT-kapsule-build}"
LAUNCHER_ROLE="projects/$PROJECT/roles/kapsuleJobLauncher"
IMAGES="$REGION-docker.pkg.dev/$PROJECT/$AR_REPO"
API_KEYS_SECRET="kapsule-api-keys"
GEMINI_SECRET="kapsule-gemini-api-key"
UPLOAD_SECRET="kapsule-upload-secret"

gcloud_() { run gcloud --project="$PROJECT" --quiet "$@"; }

# The command, shell-quoted so it can be pasted.
quoted() {
  local arg out="+"
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=" $arg"
    else out+=" '${arg//\'/\'\\\'\'}'"; fi
  done
  printf '%s' "$out"
}

# Print the command, then run it unless this is a dry run.
run() {
  printf '%s\n' "$(quoted "$@")"
  ((DRY_RUN)) || "$@"
}

# True when the resource exists. A dry run assumes nothing exists, so it prints every create.
exists() {
  ((DRY_RUN)) && return 1
  gcloud --project="$PROJECT" --quiet "$@" >/dev/null 2>&1
}

step() { printf '\n# %s\n' "$*"; }

# An IAM change right after an account is created can fail until the account has propagated:
# retry it with a growing pause (printed once, like any command).
iam() {
  run_retry "$IAM_ATTEMPTS" gcloud --project="$PROJECT" --quiet "$@"
}
run_retry() {
  local attempts="$1" attempt=1
  shift
  printf '%s  # retried up to %s times on IAM propagation delay\n' "$(quoted "$@")" "$attempts"
  ((DRY_RUN)) && return 0
  until "$@"; do
    if ((attempt >= attempts)); then
      echo "deploy.sh: still failing after $attempts attempts: $*" >&2
      return 1
    fi
    sleep $((attempt * IAM_BACKOFF_S))
    attempt=$((attempt + 1))
  done
}

if [[ -z "$PROMPT_MODEL" ]]; then
  if ((DRY_RUN)); then
    echo "# KAPSULE_PROMPT_MODEL is not set: a real run stops here (name a current Gemini model id, or local)"
    PROMPT_MODEL="<KAPSULE_PROMPT_MODEL>"
  else
    echo "deploy.sh: set KAPSULE_PROMPT_MODEL to a current Gemini model id (or local); see docs/cloud-settings.md" >&2
    exit 2
  fi
fi

# -- 0. Organisation policies: may anything be public? ------------------------------------------------
# Domain restricted sharing (iam.allowedPolicyMemberDomains) refuses any binding to allUsers: the
# delivery bucket's public reader and Cloud Run's --allow-unauthenticated. Public access prevention
# (storage.publicAccessPrevention) refuses a public bucket. Read with the effective policy of the
# project (inherited from folder and organisation); a read that fails is said, and public assumed.
policy_forbids_public() {  # $1: constraint; prints the reason and returns 0 when it forbids public access
  local json
  echo "# read: gcloud resource-manager org-policies describe $1 --project=$PROJECT --effective --format=json"
  if ! json="$(gcloud resource-manager org-policies describe "$1" --project="$PROJECT" --effective \
    --format=json 2>/dev/null)"; then
    echo "# (could not read $1: no orgpolicy.policies.get here? public access assumed; set KAPSULE_PUBLIC_ACCESS=private if it is forbidden)"
    return 1
  fi
  python3 - "$1" "$json" <<'PY'
import json, sys
constraint, policy = sys.argv[1], json.loads(sys.argv[2] or "{}")
if constraint == "storage.publicAccessPrevention":
    forbids = bool(policy.get("booleanPolicy", {}).get("enforced"))
else:  # a list constraint: only allUsers' own "domain" is never among its allowed values
    listed = policy.get("listPolicy", {})
    forbids = listed.get("allValues") == "DENY" or (bool(listed.get("allowedValues")) and listed.get("allValues") != "ALLOW")
if forbids:
    print(f"# {constraint} is enforced on this project: public access is not allowed")
sys.exit(0 if forbids else 1)
PY
}
case "$PUBLIC_ACCESS" in
  public | private) ;;
  auto)
    step "Organisation policies: is public access allowed?"
    PUBLIC_ACCESS=public
    for constraint in iam.allowedPolicyMemberDomains storage.publicAccessPrevention; do
      if policy_forbids_public "$constraint"; then PUBLIC_ACCESS=private; fi
    done
    ;;
  *) echo "deploy.sh: KAPSULE_PUBLIC_ACCESS must be auto, public or private" >&2; exit 2 ;;
esac
if [[ "$PUBLIC_ACCESS" == private ]]; then
  echo "# private deployment: final videos by signed download URL (GET /v1/jobs/ID/video redirects to one),"
  echo "# the studio through IAM (roles/run.invoker; open it with: gcloud run services proxy $SERVICE --region=$REGION --port=$PROXY_PORT)"
fi

# -- 1. APIs ---------------------------------------------------------------------------------------
step "Enable the APIs"
gcloud_ services enable run.googleapis.com firestore.googleapis.com storage.googleapis.com \
  artifactregistry.googleapis.com cloudbuild.googleapis.com secretmanager.googleapis.com \
  aiplatform.googleapis.com iam.googleapis.com iamcredentials.googleapis.com

# -- 2. Buckets ------------------------------------------------------------------------------------
step "Private bucket (uploads, work files, notebooks): uniform access, never public"
exists storage buckets describe "gs://$PRIVATE_BUCKET" ||
  gcloud_ storage buckets create "gs://$PRIVATE_BUCKET" --location="$REGION" \
    --uniform-bucket-level-access --public-access-prevention
lifecycle="$(mktemp)"
trap 'rm -f "$lifecycle"' EXIT
cat >"$lifecycle" <<JSON
{"rule": [{"action": {"type": "Delete"}, "condition": {"age": $UPLOAD_TTL_DAYS, "matchesPrefix": ["uploads/"]}}]}
JSON
echo "# lifecycle: delete uploads/ after $UPLOAD_TTL_DAYS days: $(cat "$lifecycle")"
gcloud_ storage buckets update "gs://$PRIVATE_BUCKET" --lifecycle-file="$lifecycle"

if [[ "$PUBLIC_ACCESS" == public ]]; then
  step "Delivery bucket (final videos only): uniform access, readable by anyone with the link"
  exists storage buckets describe "gs://$DELIVERY_BUCKET" ||
    gcloud_ storage buckets create "gs://$DELIVERY_BUCKET" --location="$REGION" --uniform-bucket-level-access
  gcloud_ storage buckets add-iam-policy-binding "gs://$DELIVERY_BUCKET" \
    --member=allUsers --role=roles/storage.objectViewer
else
  step "Delivery bucket (final videos only): uniform access, private; videos are fetched by signed URL"
  exists storage buckets describe "gs://$DELIVERY_BUCKET" ||
    gcloud_ storage buckets create "gs://$DELIVERY_BUCKET" --location="$REGION" --uniform-bucket-level-access \
      --public-access-prevention
fi

# -- 3. Firestore ----------------------------------------------------------------------------------
step "Firestore database and the job list's index (firestore.indexes.json)"
exists firestore databases describe --database='(default)' ||
  gcloud_ firestore databases create --location="$REGION" --type=firestore-native
# One `gcloud firestore indexes composite create` per index in the file (__name__ is implicit).
while IFS= read -r line; do
  [[ -n "$line" ]] || continue
  read -r -a index_args <<<"$line"
  if ((DRY_RUN)); then
    gcloud_ firestore indexes composite create "${index_args[@]}"
  elif ! out="$(gcloud_ firestore indexes composite create "${index_args[@]}" 2>&1)"; then
    if grep -qi "already exists" <<<"$out"; then  # a second run: the index is there
      echo "# (index exists)"
    else  # anything else is a real error: show it and stop
      printf '%s\n' "$out" >&2
      exit 1
    fi
  fi
done < <(python3 - "$repo/firestore.indexes.json" <<'PY'
import json, sys
for index in json.load(open(sys.argv[1]))["indexes"]:
    args = [f"--collection-group={index['collectionGroup']}", f"--query-scope={index.get('queryScope', 'COLLECTION')}"]
    for field in index["fields"]:
        if field["fieldPath"] == "__name__":
            continue
        order = field.get("order")
        kind = f"order={order.lower()}" if order else f"array-config={field['arrayConfig'].lower()}"
        args.append(f"--field-config=field-path={field['fieldPath']},{kind}")
    print(" ".join(args))
PY
)

# -- 4. Images -------------------------------------------------------------------------------------
step "Artifact Registry repository and the two images (built by Cloud Build)"
exists artifacts repositories describe "$AR_REPO" --location="$REGION" ||
  gcloud_ artifacts repositories create "$AR_REPO" --repository-format=docker --location="$REGION" \
    --description="Kapsule images"
step "Build service account (new projects no longer let Cloud Build use the default compute account)"
exists iam service-accounts describe "$BUILD_SA" ||
  gcloud_ iam service-accounts create kapsule-build --display-name="Kapsule image builds"
exists storage buckets describe "gs://$BUILD_BUCKET" ||
  gcloud_ storage buckets create "gs://$BUILD_BUCKET" --location="$REGION" --uniform-bucket-level-access \
    --public-access-prevention
iam storage buckets add-iam-policy-binding "gs://$BUILD_BUCKET" --member="serviceAccount:$BUILD_SA" \
  --role=roles/storage.objectViewer  # read the uploaded source
iam artifacts repositories add-iam-policy-binding "$AR_REPO" --location="$REGION" \
  --member="serviceAccount:$BUILD_SA" --role=roles/artifactregistry.writer
iam projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$BUILD_SA" \
  --role=roles/logging.logWriter --condition=None
gcloud_ builds submit "$repo" --config="$here/cloudbuild.yaml" \
  --service-account="projects/$PROJECT/serviceAccounts/$BUILD_SA" \
  --gcs-source-staging-dir="gs://$BUILD_BUCKET/source" \
  --substitutions="_IMAGES=$IMAGES,_TAG=$TAG"

# -- 5. Service accounts and their (minimal) roles --------------------------------------------------
step "Service accounts"
exists iam service-accounts describe "$API_SA" ||
  gcloud_ iam service-accounts create kapsule-api --display-name="Kapsule API"
exists iam service-accounts describe "$JOB_SA" ||
  gcloud_ iam service-accounts create kapsule-job --display-name="Kapsule job runner"

step "API: start job executions with overrides, sign upload/download URLs, read/write job records"
exists iam roles describe kapsuleJobLauncher ||
  gcloud_ iam roles create kapsuleJobLauncher --title="Kapsule job launcher" \
    --permissions=run.jobs.get,run.jobs.run,run.jobs.runWithOverrides,run.executions.get,run.executions.list,run.executions.cancel \
    --stage=GA
iam projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$API_SA" \
  --role=roles/datastore.user --condition=None
iam iam service-accounts add-iam-policy-binding "$API_SA" --member="serviceAccount:$API_SA" \
  --role=roles/iam.serviceAccountTokenCreator  # signBlob on itself: V4 signed URLs without a key file
iam storage buckets add-iam-policy-binding "gs://$PRIVATE_BUCKET" --member="serviceAccount:$API_SA" \
  --role=roles/storage.objectUser
iam storage buckets add-iam-policy-binding "gs://$PRIVATE_BUCKET" --member="serviceAccount:$API_SA" \
  --role=roles/storage.legacyBucketReader  # storage.buckets.get: the start-up preflight reads its CORS
iam storage buckets add-iam-policy-binding "gs://$DELIVERY_BUCKET" --member="serviceAccount:$API_SA" \
  --role=roles/storage.objectViewer

step "Job: private bucket read/write, delivery bucket write, job records, Vertex AI (Gemini, Veo)"
iam storage buckets add-iam-policy-binding "gs://$PRIVATE_BUCKET" --member="serviceAccount:$JOB_SA" \
  --role=roles/storage.objectUser
iam storage buckets add-iam-policy-binding "gs://$DELIVERY_BUCKET" --member="serviceAccount:$JOB_SA" \
  --role=roles/storage.objectUser  # create and, on a retry, overwrite the final video
iam projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$JOB_SA" \
  --role=roles/datastore.user --condition=None
iam projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$JOB_SA" \
  --role=roles/aiplatform.user --condition=None

# -- 6. Secrets ------------------------------------------------------------------------------------
step "Secret Manager: the API keys of the API (owner=key,…), and optionally a Gemini API key"
exists secrets describe "$API_KEYS_SECRET" ||
  gcloud_ secrets create "$API_KEYS_SECRET" --replication-policy=automatic
if [[ -n "${KAPSULE_API_KEYS:-}" ]]; then  # the value goes through stdin, never onto a command line
  echo "# (value from \$KAPSULE_API_KEYS, not shown)"
  if ((DRY_RUN)); then run gcloud --project="$PROJECT" --quiet secrets versions add "$API_KEYS_SECRET" --data-file=-
  else printf '%s' "$KAPSULE_API_KEYS" | gcloud_ secrets versions add "$API_KEYS_SECRET" --data-file=-; fi
fi
if ! ((DRY_RUN)) && [[ -z "$(gcloud --project="$PROJECT" secrets versions list "$API_KEYS_SECRET" \
  --filter=state=enabled --limit=1 --format='value(name)' 2>/dev/null)" ]]; then
  echo "deploy.sh: secret $API_KEYS_SECRET has no value yet: run again with KAPSULE_API_KEYS='owner=key,…'" >&2
  exit 1
fi
iam secrets add-iam-policy-binding "$API_KEYS_SECRET" --member="serviceAccount:$API_SA" \
  --role=roles/secretmanager.secretAccessor
step "Secret Manager: the upload secret (Idempotency-Key -> job id HMAC, signed local URLs), shared by every API instance"
exists secrets describe "$UPLOAD_SECRET" ||
  gcloud_ secrets create "$UPLOAD_SECRET" --replication-policy=automatic
if ((DRY_RUN)) || [[ -z "$(gcloud --project="$PROJECT" secrets versions list "$UPLOAD_SECRET" \
  --filter=state=enabled --limit=1 --format='value(name)' 2>/dev/null)" ]]; then
  # First run only: a random value, through stdin (never on a command line); later runs keep it, so
  # a redeploy does not change the mapping of retried requests to jobs.
  echo "# (a fresh random value, not shown; only when the secret has no version yet)"
  if ((DRY_RUN)); then run gcloud --project="$PROJECT" --quiet secrets versions add "$UPLOAD_SECRET" --data-file=-
  else python3 -c 'import secrets; print(secrets.token_hex(32), end="")' |
    gcloud_ secrets versions add "$UPLOAD_SECRET" --data-file=-; fi
fi
iam secrets add-iam-policy-binding "$UPLOAD_SECRET" --member="serviceAccount:$API_SA" \
  --role=roles/secretmanager.secretAccessor
job_secrets=""
if [[ -n "${GEMINI_API_KEY:-}" ]]; then  # only for the API-key mode; Vertex AI needs no key
  exists secrets describe "$GEMINI_SECRET" ||
    gcloud_ secrets create "$GEMINI_SECRET" --replication-policy=automatic
  echo "# (value from \$GEMINI_API_KEY, not shown)"
  if ((DRY_RUN)); then run gcloud --project="$PROJECT" --quiet secrets versions add "$GEMINI_SECRET" --data-file=-
  else printf '%s' "$GEMINI_API_KEY" | gcloud_ secrets versions add "$GEMINI_SECRET" --data-file=-; fi
  iam secrets add-iam-policy-binding "$GEMINI_SECRET" --member="serviceAccount:$JOB_SA" \
    --role=roles/secretmanager.secretAccessor
  job_secrets="GEMINI_API_KEY=$GEMINI_SECRET:latest"
fi

# -- 7. The Cloud Run Job and the API service ------------------------------------------------------
common_env="KAPSULE_STORAGE_URL=gs://$PRIVATE_BUCKET,KAPSULE_DELIVERY_URL=gs://$DELIVERY_BUCKET"
common_env+=",KAPSULE_STATUS_URL=firestore://$PROJECT/$COLLECTION"
common_env+=",KAPSULE_VIDEO_MODEL=$VIDEO_MODEL,KAPSULE_PROMPT_MODEL=$PROMPT_MODEL"
common_env+=",GOOGLE_CLOUD_PROJECT=$PROJECT,KAPSULE_VEO_LOCATION=$VEO_LOCATION,KAPSULE_GEMINI_LOCATION=$GEMINI_LOCATION"
[[ -n "$job_secrets" ]] || common_env+=",GOOGLE_GENAI_USE_VERTEXAI=true"

step "Cloud Run Job: one task per execution, $JOB_MAX_RETRIES retries (KAPSULE_JOB_MAX_RETRIES: --max-retries and the job's env), ${JOB_TIMEOUT_S}s per attempt"
job_args=(--image="$IMAGES/job:$TAG" --region="$REGION" --service-account="$JOB_SA"
  --tasks=1 --max-retries="$JOB_MAX_RETRIES" --task-timeout="${JOB_TIMEOUT_S}s"
  --memory="$JOB_MEMORY" --cpu="$JOB_CPU" --set-env-vars="$common_env,KAPSULE_JOB_MAX_RETRIES=$JOB_MAX_RETRIES")
[[ -z "$job_secrets" ]] || job_args+=(--set-secrets="$job_secrets")
gcloud_ run jobs deploy "$JOB" "${job_args[@]}"
iam run jobs add-iam-policy-binding "$JOB" --region="$REGION" --member="serviceAccount:$API_SA" \
  --role="$LAUNCHER_ROLE"

if [[ "$PUBLIC_ACCESS" == public ]]; then
  step "API service (public; every /v1 call needs one of the API keys)"
  access=--allow-unauthenticated
else
  step "API service (IAM-authenticated: callers need roles/run.invoker, and every /v1 call one of the API keys)"
  access=--no-allow-unauthenticated
fi
# Only Google's front end reaches a Cloud Run container, so the forwarded client address and scheme it
# sets are trusted from any peer (KAPSULE_FORWARDED_ALLOW_IPS; elsewhere the default is 127.0.0.1 only).
gcloud_ run deploy "$SERVICE" --image="$IMAGES/api:$TAG" --region="$REGION" --service-account="$API_SA" \
  "$access" --memory=1Gi --cpu=1 \
  --set-env-vars="$common_env,KAPSULE_LAUNCHER=cloudrun://projects/$PROJECT/locations/$REGION/jobs/$JOB,KAPSULE_CLOUDRUN_TASK_TIMEOUT_S=$JOB_TIMEOUT_S,KAPSULE_FORWARDED_ALLOW_IPS=*" \
  --set-secrets="KAPSULE_API_KEYS=$API_KEYS_SECRET:latest,KAPSULE_UPLOAD_SECRET=$UPLOAD_SECRET:latest"

if [[ "$PUBLIC_ACCESS" == private ]]; then
  step "Who may reach the IAM-authenticated service (KAPSULE_INVOKERS)"
  IFS=',' read -r -a invokers <<<"$INVOKERS"
  for member in "${invokers[@]}"; do
    [[ -n "$member" ]] || continue
    iam run services add-iam-policy-binding "$SERVICE" --region="$REGION" --member="$member" \
      --role=roles/run.invoker
  done
  ((${#invokers[@]})) || echo "# KAPSULE_INVOKERS is empty: grant roles/run.invoker on $SERVICE to the studio's users"
  # The studio is opened through `gcloud run services proxy` on this machine's port: its origin uploads.
  STUDIO_ORIGINS="http://localhost:$PROXY_PORT${STUDIO_ORIGINS:+,$STUDIO_ORIGINS}"
fi

step "CORS on the private bucket for the service's real URL(s): the studio PUTs uploads straight to it"
if ((DRY_RUN)); then
  echo "+ gcloud --project=$PROJECT --quiet run services describe $SERVICE --region=$REGION --format=json"
  service_urls="https://$SERVICE-<PROJECT_NUMBER>.$REGION.run.app"
else
  service_urls="$(gcloud --project="$PROJECT" --quiet run services describe "$SERVICE" --region="$REGION" \
    --format=json | python3 -c '
import json, sys
service = json.load(sys.stdin)
urls = json.loads(service.get("metadata", {}).get("annotations", {}).get("run.googleapis.com/urls", "[]"))
print(",".join(dict.fromkeys([service["status"]["url"], *urls])))')"
fi
origins="$service_urls${STUDIO_ORIGINS:+,$STUDIO_ORIGINS}"
cors="$(mktemp)"
trap 'rm -f "$lifecycle" "$cors"' EXIT
python3 - "$origins" >"$cors" <<'PY'
import json, sys
origins = [o.strip().rstrip("/") for o in sys.argv[1].split(",") if o.strip()]
print(json.dumps([{"origin": origins, "method": ["PUT", "GET", "HEAD"],
                   "responseHeader": ["Content-Type", "x-goog-content-length-range", "x-goog-if-generation-match"], "maxAgeSeconds": 3600}]))
PY
echo "# cors: $(cat "$cors")"
gcloud_ storage buckets update "gs://$PRIVATE_BUCKET" --cors-file="$cors"
gcloud_ run services update "$SERVICE" --region="$REGION" --update-env-vars="^;^KAPSULE_CORS_ORIGINS=$origins"

if [[ "$PUBLIC_ACCESS" == private ]]; then
  step "Done (private): open the studio with: gcloud run services proxy $SERVICE --region=$REGION --port=$PROXY_PORT"
else
  step "Done"
fi
echo "# API: gcloud run services describe $SERVICE --project=$PROJECT --region=$REGION --format='value(status.url)'"
