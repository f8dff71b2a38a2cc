namespace DreamBooth.Models.Common;

/// <summary>
/// How attention is computed. <see cref="SliceSize"/> &gt; 0 computes attention for that many (batch × head) slices at a
/// time (lower peak memory, as diffusers' <c>enable_attention_slicing</c>); 0 uses one fused
/// <c>scaled_dot_product_attention</c> call.
/// </summary>
public sealed class AttentionOptions
{
    public int SliceSize { get; set; }
}
