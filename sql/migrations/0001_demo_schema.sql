-- The demo service's own tables, shaped like those of the daemon Sieve replaces.
--
-- messages deliberately has an index on (conversation_id) alone, as the old schema.sql had: the history read
-- ("newest N of a conversation") then reads and sorts every row of a long conversation. That is the slow lookup
-- the demo lets Sieve diagnose; the index that serves it, (conversation_id, created_at DESC), is what
-- `sieve demo --with-index` adds.

DO $$
BEGIN
    CREATE TYPE public.message_role AS ENUM ('user', 'assistant', 'system');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE public.conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    continuation_id text NOT NULL UNIQUE,
    session_id      text,
    title           text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
    role            public.message_role NOT NULL,
    content         text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- A retried write must not double a message: the writer derives the key from the turn, role and content.
    idempotency_key text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_conversation_id_idx ON public.messages (conversation_id);
