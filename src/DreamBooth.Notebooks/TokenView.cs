using System.Text;
using DreamBooth.Text;

namespace DreamBooth.Notebooks;

/// <summary>One token as the text encoder sees it.</summary>
/// <param name="Token">Vocabulary string (<c>&lt;/w&gt;</c> ends a word).</param>
/// <param name="Id">Token id.</param>
/// <param name="IsSpecial">BOS/EOS/padding.</param>
/// <param name="IsHighlighted">Part of the highlighted identifier.</param>
/// <param name="IsCut">Beyond the 75 tokens the encoder reads (truncated).</param>
/// <param name="MergeRank">Rank of the BPE merge that made it (lower = more common string); null for single symbols and specials.</param>
public sealed record TokenChip(string Token, int Id, bool IsSpecial, bool IsHighlighted, bool IsCut, int? MergeRank);

/// <summary>
/// What the text encoder sees for a prompt: BOS, the BPE tokens, EOS, with an identifier's pieces highlighted and the
/// truncated tail marked. Renders as coloured chips. Build it with <see cref="Of"/>.
/// </summary>
public sealed record TokenView(string Text, IReadOnlyList<TokenChip> Tokens, int MaxContentTokens, string? Highlight, string? TruncationWarning)
{
    /// <summary>Tokenizes <paramref name="text"/> and marks every occurrence of <paramref name="highlight"/>'s token sequence.</summary>
    public static TokenView Of(ClipTokenizer tokenizer, string text, string? highlight = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(text);
        var t = tokenizer.EncodeForModel(text);
        var ids = t.Ids;
        var marked = new bool[ids.Length];
        if (!string.IsNullOrWhiteSpace(highlight))
        {
            var h = tokenizer.Encode(highlight);
            if (h.Length > 0)
                for (int i = 0; i + h.Length <= ids.Length; i++)
                    if (ids.AsSpan(i, h.Length).SequenceEqual(h))
                        for (int j = 0; j < h.Length; j++) marked[i + j] = true;
        }
        var chips = new List<TokenChip> { new(tokenizer.BosToken, tokenizer.BosId, true, false, false, null) };
        int keep = t.KeptCount;
        for (int i = 0; i < ids.Length; i++)
            chips.Add(new TokenChip(tokenizer.IdToToken(ids[i]), ids[i], tokenizer.IsSpecial(ids[i]), marked[i], i >= keep, tokenizer.MergeRank(ids[i])));
        chips.Add(new TokenChip(tokenizer.EosToken, tokenizer.EosId, true, false, false, null));
        return new TokenView(text, chips, tokenizer.MaxContentTokens, highlight, t.TruncationWarning);
    }

    /// <summary>Number of prompt tokens (without BOS/EOS).</summary>
    public int Count => Tokens.Count(c => !c.IsSpecial);

    /// <summary>The chips as HTML.</summary>
    public string ToHtml()
    {
        var sb = new StringBuilder();
        sb.Append("<div style=\"line-height:1.9\">");
        foreach (var c in Tokens)
        {
            string bg = c.IsCut ? "#ffc9d0" : c.IsSpecial ? "#e0e0e0" : c.IsHighlighted ? "#ffd54f" : "#e6ecff";
            string title = $"id {c.Id}" + (c.MergeRank is int r ? $", merge rank {r}" : "") + (c.IsHighlighted ? ", identifier" : "") + (c.IsCut ? ", CUT: the encoder never sees it" : "");
            sb.Append(NotebookHtml.Chip(c.Token.Replace(ClipTokenizer.EndOfWord, "·", StringComparison.Ordinal), bg, title,
                color: c.IsSpecial ? "#666" : "#111"));
        }
        sb.Append("</div><div style=\"font-size:12px;color:#555\">").Append(Count).Append(" / ").Append(MaxContentTokens).Append(" tokens");
        if (!string.IsNullOrWhiteSpace(Highlight)) sb.Append(" · <span style=\"background:#ffd54f;padding:0 4px\">identifier</span> = ").Append(NotebookHtml.Enc(Highlight));
        sb.Append(" · · = end of word</div>");
        if (TruncationWarning != null) sb.Append("<div style=\"color:#b00020\">").Append(NotebookHtml.Enc(TruncationWarning)).Append("</div>");
        return sb.ToString();
    }
}
