-- The demo service's files attached to conversations, shaped like the old daemon's files / conversation_files:
-- a turn looked up each of its conversation's files one by one (old-system.md 5.2, "8 files ≈ 20+ HTTP requests
-- for one conversation"). That N+1 is the demo's second storage story (`sieve demo --fix-n-plus-one` reads them
-- all in one joined query instead).

CREATE TABLE public.files (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    mime_type  text NOT NULL DEFAULT 'application/octet-stream',
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.conversation_files (
    conversation_id uuid NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
    file_id         uuid NOT NULL REFERENCES public.files (id) ON DELETE CASCADE,
    position        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, file_id)
);
