using DreamBooth.Models.Clip;
using DreamBooth.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Training;

/// <summary>
/// Text-encoder training restricted to the token-embedding rows of the concepts' identifiers
/// (<see cref="TextEncoderTraining.IdentifierEmbeddings"/>; the textual-inversion half of "pivotal tuning", as
/// diffusers' advanced DreamBooth script's <c>--train_text_encoder_ti</c>): the embedding matrix is the one trained
/// parameter of the text encoder, its gradient is zeroed outside the identifier's rows before clipping, and after every
/// optimizer step every other row is put back to its value at the start (weight decay would otherwise shrink the whole
/// vocabulary). Every other word — "white", "diamond", "top left" — keeps exactly the base model's meaning.
/// </summary>
public sealed class IdentifierEmbeddings : IDisposable
{
    readonly Tensor _rowMask;      // [vocab, 1] in the weight's dtype: 1 on the identifier rows
    readonly Tensor _keep;         // [vocab, 1] bool: true on the identifier rows
    readonly Tensor _original;     // the matrix at the start

    IdentifierEmbeddings(Parameter weight, IReadOnlyList<int> tokenIds)
    {
        Weight = weight;
        TokenIds = tokenIds;
        long vocab = weight.shape[0];
        using var ids = torch.tensor(tokenIds.Select(i => (long)i).ToArray(), dtype: ScalarType.Int64);
        using var keep1d = torch.zeros(vocab, dtype: ScalarType.Bool);
        keep1d.index_fill_(0, ids, true);
        _keep = keep1d.unsqueeze(1).to(weight.device);
        _rowMask = _keep.to(weight.dtype);
        using (torch.no_grad())
            _original = weight.detach().clone();
    }

    /// <summary>The text encoder's token-embedding matrix (the one parameter trained).</summary>
    public Parameter Weight { get; }

    /// <summary>The identifier token ids whose rows are trained (distinct, ascending).</summary>
    public IReadOnlyList<int> TokenIds { get; }

    /// <summary>
    /// Finds <paramref name="textEncoder"/>'s token-embedding matrix and the token ids of <paramref name="identifiers"/>
    /// (BPE, no BOS/EOS). Throws naming the option when an identifier has no tokens of its own.
    /// </summary>
    public static IdentifierEmbeddings Create(ClipTextModel textEncoder, ClipTokenizer tokenizer, IEnumerable<string> identifiers)
    {
        ArgumentNullException.ThrowIfNull(textEncoder);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var ids = new SortedSet<int>();
        foreach (var identifier in identifiers)
        {
            var tokens = tokenizer.Encode(identifier).Where(t => !tokenizer.IsSpecial(t)).ToArray();
            if (tokens.Length == 0)
                throw new ArgumentException($"TextEncoderTraining: the identifier '{identifier}' has no tokens to train; give the concept a rare-token identifier such as 'llmcbrrrqqdpj'", nameof(TrainingOptions.TextEncoderTraining));
            ids.UnionWith(tokens);
        }
        if (ids.Count == 0)
            throw new ArgumentException("TextEncoderTraining: no concept identifiers to train; add a concept or use TextEncoderTraining Full", nameof(TrainingOptions.TextEncoderTraining));
        var weight = textEncoder.named_parameters().FirstOrDefault(x => x.name.EndsWith("token_embedding.weight", StringComparison.Ordinal)).parameter
            ?? throw new InvalidOperationException("the text encoder has no token_embedding.weight parameter");
        if (ids.Max >= weight.shape[0])
            throw new ArgumentException($"TextEncoderTraining: token id {ids.Max} of the identifier is outside the text encoder's {weight.shape[0]}-token embedding; the tokenizer does not belong to this text encoder", nameof(TrainingOptions.TextEncoderTraining));
        return new IdentifierEmbeddings(weight, [.. ids]);
    }

    /// <summary>Zeroes the gradient outside the identifier rows (call after backward, before clipping).</summary>
    public void MaskGradient()
    {
        if (Weight.grad is { } g)
            using (torch.no_grad())
                g.mul_(_rowMask);
    }

    /// <summary>Puts every row but the identifier's back to its starting value (call after the optimizer step).</summary>
    public void RestoreOtherRows()
    {
        using var scope = torch.NewDisposeScope();
        using (torch.no_grad())
            Weight.copy_(torch.where(_keep, Weight, _original));
    }

    public void Dispose()
    {
        _rowMask.Dispose();
        _keep.Dispose();
        _original.Dispose();
    }
}
